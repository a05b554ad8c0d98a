import type { Target } from './target.js'

/**
 * Builds channel names. The scheme, under the configured prefix:
 *
 *   {prefix}{hub length}:{hub}:all
 *   {prefix}{hub length}:{hub}:group:{group}
 *   {prefix}{hub length}:{hub}:user:{user id}
 *   {prefix}{hub length}:{hub}:connection:{connection id}
 *   {prefix}instance:{instance id}          replies addressed to one instance
 *
 * One key shares the scheme: {prefix}{hub length}:{hub}:used-token:{connection id} marks a
 * negotiated connection token as used.
 *
 * The hub name is length-prefixed, and the group, user or connection id always comes last,
 * after a fixed kind word. So no name, whatever characters it contains, can produce another
 * target's channel. Instance channels start with a letter and hub channels with a digit, so
 * they cannot collide either. Redis channel names are binary-safe and need no escaping.
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

  connection (hub: string, connectionId: string): string {
    return this.#hub(hub) + 'connection:' + connectionId
  }

  /** A Redis key, not a channel: marks a negotiated connection token as used. */
  usedToken (hub: string, connectionId: string): string {
    return this.#hub(hub) + 'used-token:' + connectionId
  }

  instance (instanceId: string): string {
    return `${this.#prefix}instance:${instanceId}`
  }

  /** The channels a message for `target` is published on: one per listed name. */
  forTarget (hub: string, target: Target): string[] {
    switch (target.kind) {
      case 'all': return [this.all(hub)]
      case 'groups': return target.groups.map((group) => this.group(hub, group))
      case 'connections': return target.connectionIds.map((id) => this.connection(hub, id))
      case 'users': return target.userIds.map((id) => this.user(hub, id))
    }
  }

  #hub (hub: string): string {
    return `${this.#prefix}${hub.length}:${hub}:`
  }
}
