import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { Backplane, LocalHub } from '../backplane/backplane.js'
import { validateGroupName } from '../backplane/backplane.js'
import type { Target } from '../backplane/target.js'
import { ClientTimeoutError } from '../errors.js'
import { MessageType } from '../protocol/messages.js'
import type { HubProtocol } from '../protocol/messages.js'
import { HubConnection } from './connection.js'
import type { HubConnectionContext, HubMethod, ResolvedHubOptions } from './options.js'
import * as wire from './wire-errors.js'

/**
 * The connections of one hub on this instance, their groups, and keep-alive. The hub delivers
 * what the backplane hands it and never talks to Redis itself.
 */
export class Hub implements LocalHub {
  readonly name: string
  readonly options: ResolvedHubOptions
  readonly protocols: readonly HubProtocol[]
  readonly #backplane: Backplane
  readonly #log: FastifyBaseLogger
  readonly #protocolsByName: Map<string, HubProtocol>
  /** Every open socket, handshake done or not, so that closing reaches them all. */
  readonly #sockets = new Set<HubConnection>()
  /** Connections past the handshake, by id. */
  readonly #connections = new Map<string, HubConnection>()
  readonly #groups = new Map<string, Set<HubConnection>>()
  readonly #pingFrames: Map<string, Buffer>
  #keepAliveTimer: NodeJS.Timeout | undefined

  constructor (options: ResolvedHubOptions, backplane: Backplane, log: FastifyBaseLogger) {
    this.name = options.name
    this.options = options
    this.protocols = options.protocols
    this.#backplane = backplane
    this.#log = log
    this.#protocolsByName = new Map(options.protocols.map((protocol) => [protocol.name.toLowerCase(), protocol]))
    this.#pingFrames = new Map(options.protocols.map((protocol) => [protocol.name, protocol.writeMessage({ type: MessageType.Ping })]))
  }

  /** The number of connections on this instance that completed the handshake. */
  get connectionCount (): number {
    return this.#connections.size
  }

  async start (): Promise<void> {
    await this.#backplane.attachHub(this.name, this)
    const period = Math.max(10, Math.min(this.options.keepAliveInterval, this.options.clientTimeoutInterval) / 4)
    this.#keepAliveTimer = setInterval(() => this.#checkKeepAlive(), period)
    this.#keepAliveTimer.unref()
  }

  accept (socket: WebSocket, request: FastifyRequest): void {
    this.#sockets.add(new HubConnection(this, socket, request))
  }

  findProtocol (name: string): HubProtocol | undefined {
    return this.#protocolsByName.get(name.toLowerCase())
  }

  findMethod (name: string): { name: string, method: HubMethod } | undefined {
    return this.options.methods.get(name.toLowerCase())
  }

  deliver (target: Target, frames: ReadonlyMap<string, Buffer>, except: ReadonlySet<string>): void {
    const recipients = target.kind === 'all' ? this.#connections.values() : this.#groups.get(target.group)
    if (recipients === undefined) return
    for (const connection of recipients) {
      if (except.has(connection.id)) continue
      const frame = frames.get(connection.protocol!.name)
      if (frame !== undefined) connection.sendFrame(frame)
      else connection.log.warn({ protocol: connection.protocol!.name }, 'broadcast carries no frame for this connection\'s protocol')
    }
  }

  /** Called by a connection after its handshake. Runs onConnected; never rejects. */
  async connectionEstablished (connection: HubConnection): Promise<void> {
    this.#connections.set(connection.id, connection)
    if (this.options.onConnected === undefined) return
    try {
      await this.options.onConnected(connection.context)
    } catch (err) {
      connection.log.error({ err }, 'hub onConnected failed')
      connection.close({ error: wire.connectionClosedWithError(err, this.options.enableDetailedErrors), allowReconnect: false, cause: err as Error })
    }
  }

  /** Called by a connection once its socket closed: leaves groups and runs onDisconnected. */
  connectionClosed (connection: HubConnection, wasConnected: boolean, error: Error | undefined): void {
    this.#sockets.delete(connection)
    if (!wasConnected) return
    this.#connections.delete(connection.id)
    for (const group of connection.groups.keys()) void this.#leave(connection, group)
    connection.log.debug('hub connection closed')

    if (this.options.onDisconnected === undefined) return
    Promise.resolve()
      .then(() => this.options.onDisconnected!(connection.context, error))
      .catch((err: unknown) => connection.log.error({ err }, 'hub onDisconnected failed'))
  }

  async addToGroup (connection: HubConnection, group: string): Promise<void> {
    validateGroupName(group)
    const joined = connection.groups.get(group)
    if (joined !== undefined) return joined
    if (!this.#connections.has(connection.id)) return

    let members = this.#groups.get(group)
    if (members === undefined) {
      members = new Set()
      this.#groups.set(group, members)
    }
    members.add(connection)
    const subscribed = this.#backplane.acquireGroup(this.name, group)
    connection.groups.set(group, subscribed)
    await subscribed
  }

  async removeFromGroup (connection: HubConnection, group: string): Promise<void> {
    validateGroupName(group)
    await this.#leave(connection, group)
  }

  createContext (connection: HubConnection, request: FastifyRequest): HubConnectionContext {
    return {
      connectionId: connection.id,
      hub: this.name,
      request,
      log: connection.log,
      items: new Map(),
      groups: {
        add: (group) => this.addToGroup(connection, group),
        remove: (group) => this.removeFromGroup(connection, group),
        has: (group) => connection.groups.has(group)
      },
      send: (method, ...args) => connection.sendMessage({ type: MessageType.Invocation, target: method, arguments: args }),
      broadcast: (method, args, options) => this.#backplane.broadcast(method, args, { ...options, hub: this.name })
    }
  }

  /**
   * Sends every client a Close that allows reconnecting, so that clients with automatic
   * reconnect move to another instance, then waits for the sockets to close and drops
   * those still open after `closeTimeout`.
   */
  async close (): Promise<void> {
    clearInterval(this.#keepAliveTimer)
    if (this.#sockets.size === 0) return
    const closed = [...this.#sockets].map((connection) => new Promise<void>((resolve) => {
      connection.onceClosed(resolve)
      connection.close({ allowReconnect: true, code: 1001 })
    }))

    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(true), this.options.closeTimeout) })
    const forced = await Promise.race([Promise.all(closed).then(() => false), timedOut])
    clearTimeout(timer)
    if (forced) {
      this.#log.warn({ hub: this.name, connections: this.#sockets.size, closeTimeout: this.options.closeTimeout }, 'hub dropped connections that did not close in time')
      for (const connection of this.#sockets) connection.terminate()
    }
  }

  async #leave (connection: HubConnection, group: string): Promise<void> {
    if (!connection.groups.delete(group)) return
    const members = this.#groups.get(group)
    members?.delete(connection)
    if (members?.size === 0) this.#groups.delete(group)
    await this.#backplane.releaseGroup(this.name, group)
  }

  #checkKeepAlive (): void {
    const now = Date.now()
    for (const connection of this.#connections.values()) {
      if (now - connection.lastReceivedAt >= this.options.clientTimeoutInterval) {
        const err = new ClientTimeoutError(this.options.clientTimeoutInterval)
        connection.log.info({ err }, 'hub connection timed out')
        connection.close({ error: wire.connectionClosedWithError(err, this.options.enableDetailedErrors), allowReconnect: true, cause: err })
      } else if (now - connection.lastSentAt >= this.options.keepAliveInterval) {
        connection.sendFrame(this.#pingFrames.get(connection.protocol!.name)!)
      }
    }
  }
}
