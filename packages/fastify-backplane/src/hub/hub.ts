import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { Backplane, HubContext, LocalHub } from '../backplane/backplane.js'
import type { Target } from '../backplane/target.js'
import { validateGroupName } from '../backplane/targets.js'
import type { BroadcastOptions } from '../backplane/targets.js'
import { ClientTimeoutError } from '../errors.js'
import { MessageType } from '../protocol/messages.js'
import type { HubProtocol } from '../protocol/messages.js'
import { HubConnection } from './connection.js'
import { ConnectionContext } from './connection-context.js'
import { Outbox } from './outbox.js'
import { encodeWebSocketFrame } from './websocket-frame.js'
import type { ConnectionIdentity } from './connection.js'
import { ClientDisconnectedError } from '../errors.js'
import type { HubConnectionContext, HubConnectionGroups, HubMethod, ResolvedHubOptions } from './options.js'
import * as wire from './wire-errors.js'

/**
 * The connections of one hub on this instance, their groups and users, and keep-alive. The hub
 * delivers what the backplane hands it and never talks to Redis itself.
 */
export class Hub implements LocalHub {
  readonly name: string
  readonly options: ResolvedHubOptions
  readonly protocols: readonly HubProtocol[]
  readonly #backplane: Backplane
  /** The app's logger, which connection loggers derive from. */
  readonly log: FastifyBaseLogger
  readonly #protocolsByName: Map<string, HubProtocol>
  /** Every open socket, handshake done or not, so that closing reaches them all. */
  readonly #sockets = new Set<HubConnection>()
  /** Connections past the handshake, by id. */
  readonly #connections = new Map<string, HubConnection>()
  readonly #groups = new Map<string, Set<HubConnection>>()
  readonly #users = new Map<string, Set<HubConnection>>()
  readonly #pingFrames: Map<string, Buffer>
  /** Writes what each connection is sent, one write per socket per pass over the sockets. */
  readonly outbox: Outbox<HubConnection>
  readonly #protocolsWithoutFrames = new Set<HubProtocol>()
  #hubContext: HubContext | undefined
  #closing: Promise<void> | undefined
  #keepAliveTimer: NodeJS.Timeout | undefined

  constructor (options: ResolvedHubOptions, backplane: Backplane, log: FastifyBaseLogger) {
    this.name = options.name
    this.options = options
    this.protocols = options.protocols
    this.#backplane = backplane
    this.log = log
    this.outbox = new Outbox(this.#connections, options.maximumWriteDelay)
    this.#protocolsByName = new Map(options.protocols.map((protocol) => [protocol.name.toLowerCase(), protocol]))
    this.#pingFrames = new Map(options.protocols.map((protocol) => [protocol.name, protocol.writeMessage({ type: MessageType.Ping })]))
  }

  async start (): Promise<void> {
    await this.#backplane.attachHub(this.name, this)
    this.#hubContext = this.#backplane.hubContext(this.name)
    const period = Math.max(10, Math.min(this.options.keepAliveInterval, this.options.clientTimeoutInterval) / 4)
    this.#keepAliveTimer = setInterval(() => this.#checkKeepAlive(), period)
    this.#keepAliveTimer.unref()
  }

  /**
   * Starts a hub connection on an upgraded socket. `releasePlace`, when given, gives the
   * socket's place under the connection limits back once the WebSocket closes.
   */
  accept (socket: WebSocket, request: FastifyRequest, identity: ConnectionIdentity, releasePlace?: () => void): void {
    if (this.#closing !== undefined) {
      // The hub route took @fastify/websocket's error listener away, so this socket needs one.
      socket.on('error', () => socket.terminate())
      if (releasePlace !== undefined) socket.once('close', releasePlace)
      // Close code 1012 (service restart) lets the client try again, and the retry reaches another instance.
      socket.close(1012)
      return
    }
    this.#sockets.add(new HubConnection(this, socket, request, identity, releasePlace))
  }

  /** Issues the id of a connection that skipped negotiation; see `Backplane.issueConnectionId()`. */
  issueConnectionId (): string {
    return this.#backplane.issueConnectionId()
  }

  findProtocol (name: string): HubProtocol | undefined {
    return this.#protocolsByName.get(name.toLowerCase())
  }

  findMethod (name: string): { name: string, method: HubMethod } | undefined {
    return this.options.methods.get(name.toLowerCase())
  }

  hasConnection (connectionId: string): boolean {
    return this.#connections.has(connectionId)
  }

  invokeClient (connectionId: string, method: string, args: unknown[]): Promise<unknown> {
    const connection = this.#connections.get(connectionId)
    if (connection === undefined) return Promise.reject(new ClientDisconnectedError(connectionId, method))
    return connection.invokeClient(method, args)
  }

  countConnections (group?: string): number {
    return group === undefined ? this.#connections.size : (this.#groups.get(group)?.size ?? 0)
  }

  /**
   * Writes a broadcast to its local recipients, framed for the WebSocket once per protocol. A
   * broadcast to all goes to the outbox once, not to each connection, and recipients of other
   * broadcasts share their queues in the outbox.
   */
  deliver (target: Target, frames: ReadonlyMap<string, Buffer>, except: ReadonlySet<string>): void {
    if (this.#connections.size === 0) return
    const webSocketFrames = new Map<HubProtocol, Buffer>()
    for (const protocol of this.protocols) {
      const payload = frames.get(protocol.name)
      if (payload !== undefined) webSocketFrames.set(protocol, encodeWebSocketFrame(payload, protocol.transferFormat === 'binary'))
      else this.#warnMissingFrame(protocol)
    }

    if (target.kind === 'all') {
      const left = new Set<HubConnection>()
      for (const id of except) {
        const connection = this.#connections.get(id)
        if (connection !== undefined) left.add(connection)
      }
      this.outbox.broadcast(webSocketFrames, left, sendWebSocketFrame)
      return
    }
    const recipients: HubConnection[] = []
    for (const connection of this.#recipients(target)) {
      if (!except.has(connection.id)) recipients.push(connection)
    }
    this.outbox.multicast(webSocketFrames, recipients, sendWebSocketFrame)
  }

  /**
   * Called by a connection after its handshake: subscribes to the connection's and its user's
   * channels, then runs onConnected. Never rejects.
   */
  async connectionEstablished (connection: HubConnection, request: FastifyRequest): Promise<void> {
    this.#connections.set(connection.id, connection)
    if (connection.userId !== undefined) addMember(this.#users, connection.userId, connection)
    try {
      await Promise.all([
        this.#backplane.subscribeConnection(this.name, connection.id),
        connection.userId === undefined ? undefined : this.#backplane.subscribeUser(this.name, connection.userId)
      ])
      await this.options.onConnected?.(connection.context, request)
    } catch (err) {
      connection.log.error({ err }, 'hub connection setup failed')
      connection.close({ error: wire.connectionClosedWithError(err, this.options.enableDetailedErrors), allowReconnect: false, cause: err as Error })
    }
  }

  /** Called by a connection once its socket closed: releases its channels and runs onDisconnected. */
  connectionClosed (connection: HubConnection, wasConnected: boolean, error: Error | undefined): void {
    this.#sockets.delete(connection)
    if (!wasConnected) return
    this.#connections.delete(connection.id)
    void this.#backplane.unsubscribeConnection(this.name, connection.id)
    if (connection.userId !== undefined) {
      removeMember(this.#users, connection.userId, connection)
      void this.#backplane.unsubscribeUser(this.name, connection.userId)
    }
    for (const group of connection.groups.keys()) void this.#leave(connection, group)
    connection.log.debug('hub connection closed')

    if (this.options.onDisconnected === undefined) return
    Promise.resolve()
      .then(() => this.options.onDisconnected!(connection.context, error))
      .catch((err: unknown) => connection.log.error({ err }, 'hub onDisconnected failed'))
  }

  async addToGroup (connectionId: string, group: string): Promise<void> {
    validateGroupName(group)
    const connection = this.#connections.get(connectionId)
    if (connection === undefined) return

    const joined = connection.groups.get(group)
    if (joined !== undefined) return joined
    addMember(this.#groups, group, connection)
    const subscribed = this.#backplane.subscribeGroup(this.name, group)
    connection.groups.set(group, subscribed)
    await subscribed
  }

  async removeFromGroup (connectionId: string, group: string): Promise<void> {
    validateGroupName(group)
    const connection = this.#connections.get(connectionId)
    if (connection !== undefined) await this.#leave(connection, group)
  }

  createContext (connection: HubConnection): HubConnectionContext {
    return new ConnectionContext(connection, this)
  }

  /** Creates `context.groups` for a connection's context. */
  createGroups (_context: HubConnectionContext, connection: HubConnection): HubConnectionGroups {
    return {
      add: (group) => handled(this.addToGroup(connection.id, group), connection, group, 'hub group add failed'),
      remove: (group) => handled(this.removeFromGroup(connection.id, group), connection, group, 'hub group remove failed'),
      has: (group) => connection.groups.has(group)
    }
  }

  /** The hub's context: clients, group membership of any connection, and presence counts. */
  get hubContext (): HubContext {
    return this.#hubContext!
  }

  /** `fastify.broadcast()` with this hub set. */
  broadcast (method: string, args?: readonly unknown[], options?: Omit<BroadcastOptions, 'hub'>): Promise<void> {
    return this.#backplane.broadcast(method, args, { ...options, hub: this.name })
  }

  /**
   * Shuts the hub down. It refuses new connections and lets running invocations finish for up
   * to half of `closeTimeout`. Then it sends every client a Close that allows reconnecting, so
   * that clients with automatic reconnect move to another instance, and drops the sockets still
   * open after `closeTimeout`. Idempotent.
   */
  close (): Promise<void> {
    this.#closing ??= this.#shutDown()
    return this.#closing
  }

  async #shutDown (): Promise<void> {
    clearInterval(this.#keepAliveTimer)
    if (this.#sockets.size === 0) return
    const { closeTimeout } = this.options

    const finished = await withinTimeout(Promise.all([...this.#connections.values()].map((connection) => connection.idle())), closeTimeout / 2)
    if (!finished) this.log.warn({ hub: this.name, waited: closeTimeout / 2 }, 'hub closes connections whose invocations are still running')

    const closed = [...this.#sockets].map((connection) => new Promise<void>((resolve) => {
      connection.onceClosed(resolve)
      connection.close({ allowReconnect: true, code: 1001 })
    }))
    if (!await withinTimeout(Promise.all(closed), closeTimeout)) {
      this.log.warn({ hub: this.name, connections: this.#sockets.size, closeTimeout }, 'hub dropped connections that did not close in time')
      for (const connection of this.#sockets) connection.terminate()
    }
  }

  * #recipients (target: Target): Iterable<HubConnection> {
    switch (target.kind) {
      case 'groups':
        yield * union(target.groups.map((group) => this.#groups.get(group)))
        return
      case 'connections':
        for (const id of new Set(target.connectionIds)) {
          const connection = this.#connections.get(id)
          if (connection !== undefined) yield connection
        }
        return
      case 'users':
        yield * union(target.userIds.map((userId) => this.#users.get(userId)))
    }
  }

  /**
   * Warns once per protocol that broadcasts skip its clients: another instance offers other
   * protocols, so its broadcasts carry no frame for this one.
   */
  #warnMissingFrame (protocol: HubProtocol): void {
    if (this.#protocolsWithoutFrames.has(protocol)) return
    this.#protocolsWithoutFrames.add(protocol)
    this.log.warn({ hub: this.name, protocol: protocol.name }, 'broadcast carries no frame for this protocol, so its clients miss it; give every instance the same protocols')
  }

  async #leave (connection: HubConnection, group: string): Promise<void> {
    if (!connection.groups.delete(group)) return
    removeMember(this.#groups, group, connection)
    await this.#backplane.unsubscribeGroup(this.name, group)
  }

  #checkKeepAlive (): void {
    const now = Date.now()
    for (const connection of this.#connections.values()) {
      // A paused socket cannot deliver the client's pings, so its silence is not the client's.
      const silent = !connection.readingPaused && now - connection.lastReceivedAt >= this.options.clientTimeoutInterval
      if (silent) {
        const err = new ClientTimeoutError(this.options.clientTimeoutInterval)
        connection.log.info({ err }, 'hub connection timed out')
        connection.close({ error: wire.connectionClosedWithError(err, this.options.enableDetailedErrors), allowReconnect: true, cause: err })
      } else if (connection.sentSinceCheck) {
        // Written to since the last check: a Ping comes at most one check period late.
        connection.sentSinceCheck = false
        connection.lastSentAt = now
      } else if (now - connection.lastSentAt >= this.options.keepAliveInterval) {
        connection.sendFrame(this.#pingFrames.get(connection.protocol!.name)!)
      }
    }
  }
}

function sendWebSocketFrame (connection: HubConnection, frame: Buffer): void {
  connection.sendWebSocketFrame(frame)
}

/** Waits for `promise` at most `timeout` ms. Returns whether it settled in time. */
async function withinTimeout (promise: Promise<unknown>, timeout: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), timeout) })
  try {
    return await Promise.race([promise.then(() => true), timedOut])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Attaches a handler that logs a failed group change, and returns the same promise. An app that
 * ignores the promise, during a Redis outage for example, then never causes an unhandled rejection.
 */
function handled (promise: Promise<void>, connection: HubConnection, group: string, message: string): Promise<void> {
  promise.catch((err: unknown) => connection.log.warn({ err, group }, message))
  return promise
}

function addMember (index: Map<string, Set<HubConnection>>, key: string, connection: HubConnection): void {
  let members = index.get(key)
  if (members === undefined) {
    members = new Set()
    index.set(key, members)
  }
  members.add(connection)
}

function removeMember (index: Map<string, Set<HubConnection>>, key: string, connection: HubConnection): void {
  const members = index.get(key)
  members?.delete(connection)
  if (members?.size === 0) index.delete(key)
}

/** Yields each connection of the given sets once, even if it is in several of them. */
function * union (sets: Array<Set<HubConnection> | undefined>): Iterable<HubConnection> {
  const present = sets.filter((set) => set !== undefined)
  if (present.length === 1) {
    yield * present[0]!
    return
  }
  const seen = new Set<HubConnection>()
  for (const set of present) {
    for (const connection of set) {
      if (seen.has(connection)) continue
      seen.add(connection)
      yield connection
    }
  }
}
