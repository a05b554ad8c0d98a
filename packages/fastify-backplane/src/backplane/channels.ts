import type { Target } from './target.js'

/**
 * A connection id that an instance issued for a connection it holds: 16 random bytes and the
 * instance's route, both in base64url, joined by a dot. Messages for such a connection travel
 * on the route's channel, so the connection needs no channel of its own. Ids from negotiation
 * have no route, because the WebSocket may open on another instance than the negotiation.
 */
const ROUTED_CONNECTION_ID = /^[\w-]{22}\.([\w-]{8})$/

/** Returns the route that a connection id names, or undefined for an id without one. */
export function routeOf (connectionId: string): string | undefined {
  return ROUTED_CONNECTION_ID.exec(connectionId)?.[1]
}

/**
 * Builds channel names. The scheme, under the configured prefix:
 *
 *   {prefix}{hub length}:{hub}:all
 *   {prefix}{hub length}:{hub}:group:{group}
 *   {prefix}{hub length}:{hub}:user:{user id}
 *   {prefix}{hub length}:{hub}:connection:{connection id}   ids without a route
 *   {prefix}instance:{instance id}          replies addressed to one instance
 *   {prefix}route:{route}                   messages for the connections an instance issued ids to
 *
 * One key shares the scheme: {prefix}{hub length}:{hub}:used-token:{connection id} marks a
 * negotiated connection token as used.
 *
 * The hub name is length-prefixed, and the group, user or connection id always comes last,
 * after a fixed kind word. So no name, whatever characters it contains, can produce another
 * target's channel. Instance and route channels start with a letter and hub channels with a
 * digit, so they cannot collide either. Redis channel names are binary-safe and need no escaping.
 */
export class ChannelNames {
  readonly #prefix: string

  constructor (prefix: string) {
    this.#prefix = prefix
  }

  all (hub: string): string {
    return this.#hub(hub) + 'all'
  }

  group (hub: string, group: string): string {
    return this.#hub(hub) + 'group:' + group
  }

  user (hub: string, userId: string): string {
    return this.#hub(hub) + 'user:' + userId
  }

  /** The channel that carries messages for a connection: its route's, or its own. */
  connection (hub: string, connectionId: string): string {
    const route = routeOf(connectionId)
    return route === undefined ? this.#hub(hub) + 'connection:' + connectionId : this.route(route)
  }

  /** A Redis key, not a channel: marks a negotiated connection token as used. */
  usedToken (hub: string, connectionId: string): string {
    return this.#hub(hub) + 'used-token:' + connectionId
  }

  instance (instanceId: string): string {
    return `${this.#prefix}instance:${instanceId}`
  }

  route (route: string): string {
    return `${this.#prefix}route:${route}`
  }

  /** The channels a message for `target` is published on: one per listed name. */
  forTarget (hub: string, target: Target): string[] {
    switch (target.kind) {
      case 'all': return [this.all(hub)]
      case 'groups': return target.groups.map((group) => this.group(hub, group))
      // Connections on one instance share its route's channel, which needs the message once.
      case 'connections': return [...new Set(target.connectionIds.map((id) => this.connection(hub, id)))]
      case 'users': return target.userIds.map((id) => this.user(hub, id))
    }
  }

  #hub (hub: string): string {
    return `${this.#prefix}${hub.length}:${hub}:`
  }
}
