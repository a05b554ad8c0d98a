import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { describeValue } from '../describe-value.js'
import {
  BackplaneClosedError,
  ClientDisconnectedError,
  ClientResultError,
  ClientResultTimeoutError,
  ConnectionNotFoundError,
  HubNotSpecifiedError,
  InvalidBroadcastError
} from '../errors.js'
import { jsonHubProtocol } from '../protocol/json.js'
import { MessageType } from '../protocol/messages.js'
import type { HubProtocol } from '../protocol/messages.js'
import type { Transport } from '../transport/transport.js'
import { ChannelNames } from './channels.js'
import { createHubClients } from './clients.js'
import type { ClientMethodMap, ClientMethods, HubClients } from './clients.js'
import { decodeEnvelope, encodeEnvelope, invocationHeaderStart, isInvocationFrom, UnsupportedEnvelopeError } from './envelope.js'
import type { ClientInvocationEnvelope, Envelope, GroupCommandEnvelope, InvocationEnvelope, PresenceQueryEnvelope, ProbeEnvelope, ReplyEnvelope } from './envelope.js'
import { RecentIds } from './recent-ids.js'
import type { Target } from './target.js'
import { resolveExcept, resolveTarget, validateConnectionId, validateGroupName } from './targets.js'
import type { BroadcastOptions } from './targets.js'
import { ThrottledWarnings } from './throttled-log.js'

/** Invokes `method` with `args` on the target connections of every instance. */
export type BroadcastFunction = (method: string, args?: readonly unknown[], options?: BroadcastOptions) => Promise<void>

/** Connection counts gathered from every instance that has the hub. */
export interface Presence {
  /** Connections counted on this instance and on every instance that replied. */
  connections: number
  /** Instances that replied, this one included. */
  instances: number
  /** False when an instance that has the hub did not reply within the presence timeout. */
  complete: boolean
}

/** The backplane's state, for health checks and dashboards. Durations are in milliseconds. */
export interface BackplaneHealth {
  /** `in-process`, `redis` or `redis-cluster`. */
  transport: string
  /**
   * `connected`; `reconnecting` while Redis is unreachable; `unresponsive` while probes go
   * unanswered on a connection that looks open; `closed` after `fastify.close()`.
   */
  state: 'connected' | 'reconnecting' | 'unresponsive' | 'closed'
  /** Whether messages currently make the round trip through the transport. */
  healthy: boolean
  /** The number of channels this instance is subscribed to. */
  subscribedChannels: number
  /** Time since the last message of any kind arrived from the transport; null before the first. */
  sinceLastMessage: number | null
  /** Round-trip time of the last probe this instance sent to itself through the transport. */
  probeRoundTrip: number | null
  /** Consecutive probes that got no reply within one health check interval. */
  failedProbes: number
}

/**
 * A hub's operations for app code anywhere, like ASP.NET Core's `IHubContext<THub, T>`.
 * `TClient` maps the client methods that sends may name to their argument tuples.
 */
export interface HubContext<TClient extends ClientMethodMap<TClient> = ClientMethods> {
  readonly name: string
  /** Invokes client methods on any set of connections, on every instance. */
  readonly clients: HubClients<TClient>
  readonly groups: {
    /** Adds a connection of any instance to a group; rejects if no instance acknowledges it. */
    add (connectionId: string, group: string): Promise<void>
    /** Removes a connection of any instance from a group; rejects if no instance acknowledges it. */
    remove (connectionId: string, group: string): Promise<void>
  }
  /** Counts the hub's connections, or a group's members, across instances. */
  count (options?: { group?: string }): Promise<Presence>
}

/**
 * The part of a hub that the backplane delivers to: the hub owns sockets and groups, the
 * backplane owns channels. Frames arrive encoded, one per protocol.
 */
export interface LocalHub {
  readonly protocols: readonly HubProtocol[]
  deliver (target: Target, frames: ReadonlyMap<string, Buffer>, except: ReadonlySet<string>): void
  hasConnection (connectionId: string): boolean
  addToGroup (connectionId: string, group: string): Promise<void>
  removeFromGroup (connectionId: string, group: string): Promise<void>
  countConnections (group?: string): number
  invokeClient (connectionId: string, method: string, args: unknown[]): Promise<unknown>
}

export interface BackplaneSettings {
  transport: Transport
  instanceId: string
  channelPrefix: string
  log: FastifyBaseLogger
  /** How long a group command for a connection on another instance waits for its owner, in ms. */
  groupCommandTimeout: number
  /** How long a presence count waits for the other instances' replies, in ms. */
  presenceTimeout: number
  /** How long a client result from a connection on another instance is awaited, in ms. */
  clientResultTimeout: number
  /** How often the instance probes the transport with a message to itself, in ms. */
  healthCheckInterval: number
}

interface Subscription {
  count: number
  /**
   * Settles once the transport has confirmed the subscription. Then it becomes `SUBSCRIBED`,
   * so that the many one-member channels of connections and users hold no promise each.
   */
  subscribed: Promise<void> | undefined
}

const SUBSCRIBED = Promise.resolve()

/**
 * Carries hub messages between instances. It maps targets to channels, encodes each
 * broadcast once per protocol, delivers it to local connections at once, publishes it for the
 * other instances, and drops its own echo when the transport hands it back.
 */
export class Backplane {
  readonly instanceId: string
  /**
   * The instance id plus a random suffix: unique per process even when two processes share an
   * instance id, as a dyno and its replacement do while they overlap. Envelopes carry it, so
   * echo detection and duplicate detection never confuse two processes.
   */
  readonly #origin: string
  /** The first bytes of every invocation envelope this process publishes, to drop its echo unparsed. */
  readonly #ownInvocationStart: Buffer
  /**
   * The channel that carries messages for the connections this instance issued ids to (see
   * `issueConnectionId()`), subscribed once, so that those connections need no channel each.
   */
  readonly #routeChannel: string
  readonly #route: string
  readonly #transport: Transport
  readonly #channels: ChannelNames
  readonly #log: FastifyBaseLogger
  readonly #warnings: ThrottledWarnings
  readonly #settings: BackplaneSettings
  readonly #hubs = new Map<string, LocalHub>()
  readonly #subscriptions = new Map<string, Subscription>()
  readonly #recentIds = new RecentIds()
  readonly #pendingReplies = new Map<number, (reply: ReplyEnvelope) => void>()
  #sequence = 0
  #closed = false
  #healthTimer: NodeJS.Timeout | undefined
  /** The last probe, until its reply arrives or the next check; `failed` once its PUBLISH failed. */
  #pendingProbe: { requestId: number, sentAt: number, failed: boolean } | undefined
  #probeRoundTrip: number | null = null
  #lastProbeAt: number | undefined
  #lastMessageAt: number | undefined
  #failedProbes = 0
  #startedAt = Date.now()

  constructor (settings: BackplaneSettings) {
    this.instanceId = settings.instanceId
    this.#origin = `${settings.instanceId}#${randomBytes(6).toString('base64url')}`
    this.#ownInvocationStart = invocationHeaderStart(this.#origin)
    this.#settings = settings
    this.#transport = settings.transport
    this.#channels = new ChannelNames(settings.channelPrefix)
    this.#route = randomBytes(6).toString('base64url')
    this.#routeChannel = this.#channels.route(this.#route)
    this.#log = settings.log
    this.#warnings = new ThrottledWarnings(settings.log)
    this.#transport.listen((channel, payload) => this.#receive(channel, payload))
  }

  /** The transport in use: `in-process` or `redis`. */
  get transport (): string {
    return this.#transport.kind
  }

  /** Whether messages can currently reach other instances. Always true in-process until closed. */
  get connected (): boolean {
    return !this.#closed && this.#transport.connected
  }

  get closed (): boolean {
    return this.#closed
  }

  /**
   * Subscribes to this instance's own channels, which carry replies addressed to it and
   * messages for the connections it issued ids to, and starts the health check.
   */
  async start (): Promise<void> {
    await Promise.all([this.#acquire(this.#channels.instance(this.#origin)), this.#acquire(this.#routeChannel)])
    this.#startedAt = Date.now()
    this.#healthTimer = setInterval(() => this.#checkHealth(), this.#settings.healthCheckInterval)
    this.#healthTimer.unref()
    this.#checkHealth()
  }

  /** Reports the transport's state and the last probe's round trip. */
  health (now = Date.now()): BackplaneHealth {
    // Right after start the first probe may still be on its way, which is not a failure.
    const staleAfter = 2 * this.#settings.healthCheckInterval
    const probed = now - (this.#lastProbeAt ?? this.#startedAt) <= staleAfter
    let state: BackplaneHealth['state'] = 'connected'
    if (this.#closed) state = 'closed'
    else if (!this.#transport.connected) state = 'reconnecting'
    else if (this.#failedProbes > 0) state = 'unresponsive'
    return {
      transport: this.#transport.kind,
      state,
      healthy: state === 'connected' && probed,
      subscribedChannels: this.#transport.subscribedChannels,
      sinceLastMessage: this.#lastMessageAt === undefined ? null : now - this.#lastMessageAt,
      probeRoundTrip: this.#probeRoundTrip,
      failedProbes: this.#failedProbes
    }
  }

  /** Registers a hub of this instance and subscribes to its `all` channel. */
  async attachHub (name: string, hub: LocalHub): Promise<void> {
    this.#hubs.set(name, hub)
    await this.#acquire(this.#channels.all(name))
  }

  // A hub calls these as local members come and go. Subscriptions are reference-counted, so
  // the instance receives a group's or user's traffic only while it has a member.

  subscribeGroup (hub: string, group: string): Promise<void> {
    return this.#acquire(this.#channels.group(hub, group))
  }

  unsubscribeGroup (hub: string, group: string): Promise<void> {
    return this.#release(this.#channels.group(hub, group))
  }

  subscribeUser (hub: string, userId: string): Promise<void> {
    return this.#acquire(this.#channels.user(hub, userId))
  }

  unsubscribeUser (hub: string, userId: string): Promise<void> {
    return this.#release(this.#channels.user(hub, userId))
  }

  /**
   * Issues the id of a connection that this instance accepted. The id names this instance's
   * route, so messages for the connection reach it without a subscription of its own.
   */
  issueConnectionId (): string {
    return `${randomBytes(16).toString('base64url')}.${this.#route}`
  }

  /** Subscribes to the connection's channel, unless it is this instance's route channel. */
  subscribeConnection (hub: string, connectionId: string): Promise<void> {
    const channel = this.#channels.connection(hub, connectionId)
    return channel === this.#routeChannel ? SUBSCRIBED : this.#acquire(channel)
  }

  unsubscribeConnection (hub: string, connectionId: string): Promise<void> {
    const channel = this.#channels.connection(hub, connectionId)
    return channel === this.#routeChannel ? SUBSCRIBED : this.#release(channel)
  }

  /**
   * Implements `fastify.broadcast()`. Every failure, invalid arguments included, rejects the
   * returned promise, and that promise is already handled and logged, so a caller that ignores
   * it never causes an unhandled rejection.
   */
  broadcast (method: string, args: readonly unknown[] = [], options: BroadcastOptions = {}): Promise<void> {
    return this.#handled(() => this.#broadcast(method, args, options), { method }, 'broadcast failed')
  }

  /**
   * Marks a negotiated connection as used, across instances, for `ttl` ms. Returns false if
   * another WebSocket already used it.
   */
  claimConnection (hub: string, connectionId: string, ttl: number): Promise<boolean> {
    return this.#transport.claim(this.#channels.usedToken(hub, connectionId), ttl)
  }

  /**
   * Returns the context of a hub, by default the only hub of this instance. The type argument
   * only narrows what `clients` accepts at compile time; nothing checks it at run time.
   */
  hubContext<TClient extends ClientMethodMap<TClient> = ClientMethods> (hub?: string): HubContext<TClient> {
    const name = this.#resolveHub(hub)
    return {
      name,
      clients: createHubClients(
        (method, args, options) => this.broadcast(method, args, { ...options, hub: name }),
        (connectionId, method, args) => this.#handled(() => this.#invokeClient(name, connectionId, method, args), { connectionId, method }, 'client invocation failed')
      ),
      groups: {
        add: (connectionId, group) => this.#handled(() => this.#groupCommand(name, connectionId, group, 'add'), { connectionId, group }, 'group add failed'),
        remove: (connectionId, group) => this.#handled(() => this.#groupCommand(name, connectionId, group, 'remove'), { connectionId, group }, 'group remove failed')
      },
      count: (options = {}) => this.#countConnections(name, options.group)
    }
  }

  /** Stops receiving, and releases the transport's connections. Idempotent. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#healthTimer)
    this.#hubs.clear()
    await this.#transport.close()
  }

  #broadcast (method: string, args: readonly unknown[], options: BroadcastOptions): Promise<void> {
    if (this.#closed) throw new BackplaneClosedError()
    if (typeof method !== 'string' || method === '') {
      throw new InvalidBroadcastError('method', `expected a non-empty string, got ${describeValue(method)}`)
    }
    if (!Array.isArray(args)) {
      throw new InvalidBroadcastError('arguments', `expected an array, got ${describeValue(args)}`)
    }

    const hubName = this.#resolveHub(options.hub)
    const target = resolveTarget(options)
    const except = resolveExcept(options.except)
    const hub = this.#hubs.get(hubName)
    const frames = encodeInvocation(hub?.protocols ?? [jsonHubProtocol], method, args)

    // Published before the local delivery, so that a transport that sends at the end of the
    // turn, as ioredis's auto-pipelining does, sends before the hub writes to its own sockets.
    const envelope: InvocationEnvelope = { type: 'invocation', origin: this.#origin, id: ++this.#sequence, hub: hubName, target, except, frames }
    const published = this.#publish(this.#channels.forTarget(hubName, target), encodeEnvelope(envelope))
    hub?.deliver(target, frames, new Set(except))
    return published
  }

  async #groupCommand (hub: string, connectionId: string, group: string, action: 'add' | 'remove'): Promise<void> {
    if (this.#closed) throw new BackplaneClosedError()
    validateConnectionId(connectionId)
    validateGroupName(group)

    const local = this.#hubs.get(hub)
    if (local?.hasConnection(connectionId) === true) {
      await (action === 'add' ? local.addToGroup(connectionId, group) : local.removeFromGroup(connectionId, group))
      return
    }

    const timeout = this.#settings.groupCommandTimeout
    const command: GroupCommandEnvelope = { type: 'group', origin: this.#origin, requestId: ++this.#sequence, hub, connectionId, group, action }
    const replies = await this.#request(this.#channels.connection(hub, connectionId), command, 1, timeout)
    if (replies.length === 0) throw new ConnectionNotFoundError(hub, connectionId, timeout)
  }

  async #invokeClient (hub: string, connectionId: string, method: string, args: unknown[]): Promise<unknown> {
    if (this.#closed) throw new BackplaneClosedError()
    validateConnectionId(connectionId)
    if (typeof method !== 'string' || method === '') {
      throw new InvalidBroadcastError('method', `expected a non-empty string, got ${describeValue(method)}`)
    }

    const local = this.#hubs.get(hub)
    if (local?.hasConnection(connectionId) === true) return await local.invokeClient(connectionId, method, args)

    const timeout = this.#settings.clientResultTimeout
    const request: ClientInvocationEnvelope = { type: 'client-invocation', origin: this.#origin, requestId: ++this.#sequence, hub, connectionId, method, arguments: args }
    const [reply] = await this.#request(this.#channels.connection(hub, connectionId), request, 1, timeout)
    if (reply === undefined) throw new ClientResultTimeoutError(connectionId, method, timeout)
    if (reply.error !== undefined) throw remoteClientError(reply.error, connectionId, method)
    return reply.result
  }

  async #countConnections (hub: string, group: string | undefined): Promise<Presence> {
    if (this.#closed) throw new BackplaneClosedError()
    if (group !== undefined) validateGroupName(group)

    const local = this.#hubs.get(hub)?.countConnections(group) ?? 0
    const subscribers = await this.#transport.subscriberCount(this.#channels.all(hub))
    const others = subscribers - (this.#hubs.has(hub) ? 1 : 0)
    if (others <= 0) return { connections: local, instances: 1, complete: true }

    const query: PresenceQueryEnvelope = { type: 'presence', origin: this.#origin, requestId: ++this.#sequence, hub }
    if (group !== undefined) query.group = group
    const replies = await this.#request(this.#channels.all(hub), query, others, this.#settings.presenceTimeout)
    return {
      connections: replies.reduce((sum, reply) => sum + (reply.count ?? 0), local),
      instances: replies.length + 1,
      complete: replies.length >= others
    }
  }

  /** Publishes a request and collects replies until `expected` arrived or `timeout` ms passed. */
  async #request (channel: string, request: GroupCommandEnvelope | ClientInvocationEnvelope | PresenceQueryEnvelope, expected: number, timeout: number): Promise<ReplyEnvelope[]> {
    const replies: ReplyEnvelope[] = []
    let timer: NodeJS.Timeout | undefined
    const done = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeout)
      this.#pendingReplies.set(request.requestId, (reply) => {
        replies.push(reply)
        if (replies.length >= expected) resolve()
      })
    })
    try {
      await this.#publish([channel], encodeEnvelope(request))
      await done
    } finally {
      clearTimeout(timer)
      this.#pendingReplies.delete(request.requestId)
    }
    return replies
  }

  #publish (channels: string[], payload: Buffer): Promise<void> {
    if (channels.length === 1) return this.#transport.publish(channels[0]!, payload)
    return Promise.all(channels.map((channel) => this.#transport.publish(channel, payload))).then(() => {})
  }

  #resolveHub (hub: string | undefined): string {
    if (hub !== undefined) {
      if (typeof hub !== 'string' || hub === '') {
        throw new InvalidBroadcastError('hub', `expected a non-empty string, got ${describeValue(hub)}`)
      }
      return hub
    }
    if (this.#hubs.size === 1) return this.#hubs.keys().next().value!
    throw new HubNotSpecifiedError(this.#hubs.size === 0 ? 'no hub' : `${this.#hubs.size} hubs (${[...this.#hubs.keys()].join(', ')})`)
  }

  /** Runs `operation`, turning a synchronous throw into a rejection that is logged and handled. */
  #handled<T> (operation: () => Promise<T>, fields: Record<string, unknown>, message: string): Promise<T> {
    let result: Promise<T>
    try {
      result = operation()
    } catch (err) {
      result = Promise.reject(err)
    }
    result.catch((err: Error & { code?: string }) => {
      this.#warnings.warn(`${message}:${err.code ?? err.name}`, { err, ...fields }, message)
    })
    return result
  }

  /**
   * Sends a probe to this instance's own channel. A probe still unanswered one interval later
   * means the connections look open but carry nothing, as after a half-open TCP connection or
   * a frozen server, so the transport reconnects. Only a probe sent while the connections were
   * up counts. No probe is sent while the transport reconnects, and one whose PUBLISH failed is
   * dropped: both mean an outage that the transport's own events report, and once Redis is back
   * a reconnect would only drop the connections that were just restored.
   */
  #checkHealth (): void {
    if (this.#closed) return
    const now = Date.now()
    const pending = this.#pendingProbe
    this.#pendingProbe = undefined
    if (pending !== undefined && !pending.failed) {
      this.#failedProbes++
      if (this.#transport.connected) {
        this.#warnings.warn('health-check', { failedProbes: this.#failedProbes, waited: now - pending.sentAt, transport: this.#transport.kind }, 'backplane health check timed out; reconnecting to Redis')
        this.#transport.reconnect()
        // A probe sent now could reach Redis before the subscriber has subscribed again, so the
        // next check probes the new connections.
        return
      }
    }
    if (!this.#transport.connected) return

    const probe: ProbeEnvelope = { type: 'probe', origin: this.#origin, requestId: ++this.#sequence }
    const sent = { requestId: probe.requestId, sentAt: now, failed: false }
    this.#pendingProbe = sent
    this.#transport.publish(this.#channels.instance(this.#origin), encodeEnvelope(probe)).catch(() => {
      // The connection failed meanwhile, which the transport's own events report.
      sent.failed = true
    })
  }

  #receiveProbe (probe: ProbeEnvelope): void {
    if (probe.origin !== this.#origin || probe.requestId !== this.#pendingProbe?.requestId) return
    const now = Date.now()
    this.#probeRoundTrip = now - this.#pendingProbe.sentAt
    this.#lastProbeAt = now
    this.#pendingProbe = undefined
    if (this.#failedProbes > 0) {
      this.#log.info({ failedProbes: this.#failedProbes, probeRoundTrip: this.#probeRoundTrip }, 'backplane health check recovered')
      this.#failedProbes = 0
    }
  }

  #receive (channel: string, payload: Buffer): void {
    this.#lastMessageAt = Date.now()
    // The echo of this process's own broadcasts, which it delivered locally when it sent them.
    if (isInvocationFrom(payload, this.#ownInvocationStart)) return
    let envelope: Envelope
    try {
      envelope = decodeEnvelope(payload)
    } catch (err) {
      const key = err instanceof UnsupportedEnvelopeError ? `envelope-version:${err.version}` : 'envelope-invalid'
      this.#warnings.warn(key, { err, channel }, 'dropped a backplane message that cannot be decoded')
      return
    }

    // decodeEnvelope checks the framing, not every field, so a malformed envelope from Redis
    // can throw here. It is dropped, because a throw from the subscriber's event would crash
    // the process.
    try {
      switch (envelope.type) {
        case 'invocation':
          this.#receiveInvocation(envelope)
          break
        case 'group':
          void this.#receiveGroupCommand(envelope)
          break
        case 'client-invocation':
          void this.#receiveClientInvocation(envelope)
          break
        case 'presence':
          this.#receivePresenceQuery(envelope)
          break
        case 'probe':
          this.#receiveProbe(envelope)
          break
        case 'reply':
          this.#pendingReplies.get(envelope.requestId)?.(envelope)
          break
      }
    } catch (err) {
      this.#warnings.warn('envelope-malformed', { err, channel }, 'dropped a malformed backplane message')
    }
  }

  #receiveInvocation (envelope: InvocationEnvelope): void {
    if (envelope.origin === this.#origin) return
    if (spansChannels(envelope.target) && !this.#recentIds.add(envelope.origin, envelope.id)) return
    this.#hubs.get(envelope.hub)?.deliver(envelope.target, envelope.frames, new Set(envelope.except))
  }

  async #receiveGroupCommand (command: GroupCommandEnvelope): Promise<void> {
    const hub = this.#hubs.get(command.hub)
    if (hub === undefined || !hub.hasConnection(command.connectionId)) return
    try {
      await (command.action === 'add' ? hub.addToGroup(command.connectionId, command.group) : hub.removeFromGroup(command.connectionId, command.group))
      await this.#reply(command, {})
    } catch (err) {
      this.#log.warn({ err, connectionId: command.connectionId, group: command.group, origin: command.origin }, 'group command from another instance failed')
    }
  }

  async #receiveClientInvocation (request: ClientInvocationEnvelope): Promise<void> {
    const hub = this.#hubs.get(request.hub)
    if (hub === undefined || !hub.hasConnection(request.connectionId)) return
    let fields: Pick<ReplyEnvelope, 'result' | 'error'>
    try {
      fields = { result: await hub.invokeClient(request.connectionId, request.method, request.arguments) }
    } catch (err) {
      const { code = 'FST_BACKPLANE_CLIENT_RESULT_ERROR', message } = err as Error & { code?: string }
      const clientText = (err as { clientError?: string }).clientError
      fields = { error: { code, message: clientText ?? message } }
    }
    await this.#reply(request, fields).catch((err: unknown) => {
      this.#warnings.warn('client-invocation-reply', { err, origin: request.origin }, 'client result reply failed')
    })
  }

  #receivePresenceQuery (query: PresenceQueryEnvelope): void {
    if (query.origin === this.#origin) return
    const hub = this.#hubs.get(query.hub)
    if (hub === undefined) return
    this.#reply(query, { count: hub.countConnections(query.group) }).catch((err: unknown) => {
      this.#warnings.warn('presence-reply', { err, origin: query.origin }, 'presence reply failed')
    })
  }

  #reply (request: GroupCommandEnvelope | ClientInvocationEnvelope | PresenceQueryEnvelope, fields: Pick<ReplyEnvelope, 'count' | 'result' | 'error'>): Promise<void> {
    const reply: ReplyEnvelope = { type: 'reply', origin: this.#origin, requestId: request.requestId, ...fields }
    return this.#transport.publish(this.#channels.instance(request.origin), encodeEnvelope(reply))
  }

  // Redis receives one SUBSCRIBE when the first local member of a channel arrives and one
  // UNSUBSCRIBE when the last leaves. Both are issued synchronously in call order, so the
  // server ends up in the state of the last call.
  #acquire (channel: string): Promise<void> {
    let subscription = this.#subscriptions.get(channel)
    if (subscription === undefined) {
      subscription = { count: 0, subscribed: undefined }
      this.#subscriptions.set(channel, subscription)
    }
    subscription.count++
    subscription.subscribed ??= this.#subscribe(channel, subscription)
    return subscription.subscribed
  }

  async #subscribe (channel: string, subscription: Subscription): Promise<void> {
    try {
      await this.#transport.subscribe(channel)
      subscription.subscribed = SUBSCRIBED
    } catch (err) {
      // The next member to arrive tries again instead of inheriting this failure.
      subscription.subscribed = undefined
      throw err
    }
  }

  async #release (channel: string): Promise<void> {
    const subscription = this.#subscriptions.get(channel)
    if (subscription === undefined) return
    if (--subscription.count > 0) return

    this.#subscriptions.delete(channel)
    if (this.#closed) return
    try {
      await this.#transport.unsubscribe(channel)
    } catch (err) {
      // A failed UNSUBSCRIBE leaves at most some extra traffic, which deliver() filters out.
      this.#warnings.warn('unsubscribe', { err, channel }, 'backplane unsubscribe failed')
    }
  }
}

/** Rebuilds the coded error of a client invocation that failed on another instance. */
function remoteClientError (error: { code: string, message: string }, connectionId: string, method: string): Error {
  switch (error.code) {
    case 'FST_BACKPLANE_CLIENT_DISCONNECTED': return new ClientDisconnectedError(connectionId, method)
    case 'FST_BACKPLANE_CLIENT_RESULT_ERROR': return new ClientResultError(connectionId, method, error.message)
    default: return Object.assign(new Error(error.message), { code: error.code })
  }
}

function spansChannels (target: Target): boolean {
  switch (target.kind) {
    case 'all': return false
    case 'groups': return target.groups.length > 1
    case 'connections': return target.connectionIds.length > 1
    case 'users': return target.userIds.length > 1
  }
}

function encodeInvocation (protocols: readonly HubProtocol[], method: string, args: readonly unknown[]): Map<string, Buffer> {
  const frames = new Map<string, Buffer>()
  for (const protocol of protocols) {
    try {
      frames.set(protocol.name, protocol.writeMessage({ type: MessageType.Invocation, target: method, arguments: [...args] }))
    } catch (err) {
      throw new InvalidBroadcastError('arguments', `cannot be encoded with the ${protocol.name} protocol (${(err as Error).message})`)
    }
  }
  return frames
}
