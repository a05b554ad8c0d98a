import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { HubContext } from '../backplane/backplane.js'
import type { ClientMethodMap, ClientMethods, ClientProxy, HubClients, SingleClientProxy } from '../backplane/clients.js'
import type { BroadcastOptions } from '../backplane/targets.js'
import { InvalidOptionError } from '../errors.js'
import { jsonHubProtocol } from '../protocol/json.js'
import { messagePackHubProtocol } from '../protocol/msgpack.js'
import type { HubProtocol } from '../protocol/messages.js'

/**
 * The connection context that hub methods, `onConnected` and `onDisconnected` receive.
 * Annotate a method's context as `HubConnectionContext<ChatClient>` to have the compiler check
 * what `clients`, `send()` and `invoke()` name; see `ClientMethods`.
 */
export interface HubConnectionContext<TClient extends ClientMethodMap<TClient> = ClientMethods> {
  /** The server-assigned id of this connection, unique across instances. */
  readonly connectionId: string
  /** The user id that the hub's `authenticate` option returned; undefined for anonymous connections. */
  readonly userId: string | undefined
  /** The name of the hub the connection belongs to. */
  readonly hub: string
  /** The HTTP request that opened the WebSocket: headers, query string, remote address. */
  readonly request: FastifyRequest
  /** A child of the request logger that carries the connection id. */
  readonly log: FastifyBaseLogger
  /** Per-connection state that the app keeps between invocations. */
  readonly items: Map<unknown, unknown>
  /** The groups this connection belongs to, and a way to join and leave them. */
  readonly groups: HubConnectionGroups
  /** Recipient selectors, as in a SignalR hub's `Clients`, across every instance. */
  readonly clients: CallerClients<TClient>
  /** The hub's context: clients, group membership of any connection, and presence counts. */
  readonly hubContext: HubContext<TClient>
  /**
   * Invokes a client method on this connection and resolves with the value its handler returns.
   * Rejects on timeout, on a client error, or when the connection closes.
   */
  invoke<M extends keyof TClient & string> (method: M, ...args: TClient[M]): Promise<unknown>
  /** Invokes a client method on this connection only. Settles once the frame is written. */
  send<M extends keyof TClient & string> (method: M, ...args: TClient[M]): Promise<void>
  /** `fastify.broadcast()` with the hub already set to this connection's hub. */
  broadcast (method: string, args?: readonly unknown[], options?: Omit<BroadcastOptions, 'hub'>): Promise<void>
}

/** `HubClients` plus the selectors relative to the calling connection. */
export interface CallerClients<TClient extends ClientMethodMap<TClient> = ClientMethods> extends HubClients<TClient> {
  /** This connection only. Its `send()` settles once the frame is written. */
  readonly caller: SingleClientProxy<TClient>
  /** Every connection of the hub except this one. */
  readonly others: ClientProxy<TClient>
  /** The members of a group except this connection. */
  othersInGroup (group: string): ClientProxy<TClient>
}

/**
 * Verifies a connection request before the WebSocket upgrade. `token` is the bearer token from
 * the `access_token` query parameter (browsers) or the `Authorization: Bearer` header. Returns
 * the user id, or undefined for an anonymous connection. Returning false or throwing rejects
 * the request with 401, and no WebSocket is opened.
 */
export type HubAuthenticate = (request: FastifyRequest, token: string | undefined) => string | undefined | false | Promise<string | undefined | false>

export interface HubConnectionGroups {
  /**
   * Adds the connection to a group. Settles once this instance is subscribed to the group's
   * channel, so a broadcast to the group sent afterwards, from any instance, reaches it.
   */
  add (group: string): Promise<void>
  /** Removes the connection from a group. Connections leave all groups when they close. */
  remove (group: string): Promise<void>
  /** The groups the connection has joined. */
  has (group: string): boolean
}

/**
 * A hub method. Its return value, or what its promise resolves to, is the invocation's result.
 * A thrown HubException's message reaches the client. Other errors are logged, and the client
 * gets a generic text.
 */
export type HubMethod = (context: HubConnectionContext, ...args: any[]) => unknown

/** Options of the hub plugin. Durations are in milliseconds. */
export interface HubOptions {
  /** The URL path of the WebSocket route, such as `/chatHub`. Required. */
  path: string
  /**
   * The hub's name, which `broadcast({ hub })` uses. Every instance must use the same name.
   * @default the path
   */
  name?: string
  /**
   * The methods that clients may invoke, by name. Names match case-insensitively, as in
   * ASP.NET Core SignalR; only own properties of a plain object count.
   * @default {}
   */
  methods?: Record<string, HubMethod> | Map<string, HubMethod>
  /**
   * Verifies each connection request before the upgrade and returns its user id.
   * @default undefined (every connection is anonymous)
   */
  authenticate?: HubAuthenticate
  /** Runs after a successful handshake, before any invocation of that connection. */
  onConnected?: (context: HubConnectionContext) => unknown
  /** Runs after a connection closed, with the error that closed it, if any. */
  onDisconnected?: (context: HubConnectionContext, error?: Error) => unknown
  /**
   * The hub protocols that clients may ask for in the handshake. Each broadcast is encoded
   * once for every protocol listed here.
   * @default [jsonHubProtocol, messagePackHubProtocol]
   */
  protocols?: HubProtocol[]
  /**
   * The server sends a Ping when it has sent nothing else for this long. Keep it below the
   * 55 s after which Heroku's router closes an idle connection.
   * @default 15000
   */
  keepAliveInterval?: number
  /**
   * The server closes a connection from which nothing arrived for this long. Clients ping every
   * 15 s by default, so keep it well above that.
   * @default 30000
   */
  clientTimeoutInterval?: number
  /**
   * How long a new WebSocket may take to send its handshake.
   * @default 15000
   */
  handshakeTimeout?: number
  /**
   * The largest incoming hub message, in bytes. A larger one closes the connection with an error.
   * @default 32768
   */
  maximumReceiveMessageSize?: number
  /**
   * The most bytes that may wait unsent on one connection's socket. A client that reads slower
   * than messages arrive is closed with a Close message that allows reconnecting, so that it
   * cannot grow server memory; other clients are unaffected. The default is an estimate that
   * leaves room for bursts of a few thousand small messages.
   * @default 1048576 (1 MiB)
   */
  maximumOutgoingBufferSize?: number
  /**
   * How many invocations of one connection run at the same time. The others wait in arrival order.
   * @default 1
   */
  maximumParallelInvocationsPerClient?: number
  /**
   * How many invocations of one connection may wait for a free slot; past this bound the
   * client gets an error Completion.
   * @default 100
   */
  maximumQueuedInvocationsPerClient?: number
  /**
   * How many items of one upload stream wait for the hub method to read them. When the buffer
   * is full the server stops reading from that client's socket until the method catches up.
   * @default 10
   */
  streamBufferCapacity?: number
  /**
   * How long the server waits for a client to return a result for `invoke()`.
   * @default 30000
   */
  clientResultTimeout?: number
  /**
   * The secret that signs negotiated connection tokens. Every instance needs the same secret,
   * so that a WebSocket opened on any instance accepts a token issued by another. Without it,
   * each process uses a random secret and logs a warning.
   * @default a random secret per process
   */
  negotiateSecret?: string
  /**
   * How long a negotiated connection token stays valid.
   * @default 60000
   */
  connectionTokenLifetime?: number
  /**
   * Whether clients see the type and message of any error a hub method throws, not only of a
   * HubException. Leave it off in production: messages can reveal internals.
   * @default false
   */
  enableDetailedErrors?: boolean
  /**
   * How long closing Fastify waits for clients to acknowledge the WebSocket close before the
   * sockets are dropped.
   * @default 2000
   */
  closeTimeout?: number
}

export interface ResolvedHubOptions {
  path: string
  name: string
  methods: Map<string, { name: string, method: HubMethod }>
  authenticate: HubAuthenticate | undefined
  onConnected: HubOptions['onConnected']
  onDisconnected: HubOptions['onDisconnected']
  protocols: HubProtocol[]
  keepAliveInterval: number
  clientTimeoutInterval: number
  handshakeTimeout: number
  maximumReceiveMessageSize: number
  maximumOutgoingBufferSize: number
  maximumParallelInvocationsPerClient: number
  maximumQueuedInvocationsPerClient: number
  streamBufferCapacity: number
  clientResultTimeout: number
  negotiateSecret: string | undefined
  connectionTokenLifetime: number
  enableDetailedErrors: boolean
  closeTimeout: number
}

export function resolveHubOptions (options: HubOptions): ResolvedHubOptions {
  const { path, name = path, authenticate, onConnected, onDisconnected, protocols = [jsonHubProtocol, messagePackHubProtocol] } = options

  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw new InvalidOptionError('path', `expected a URL path starting with "/", got ${JSON.stringify(path)}`, "Pass the hub's route, such as '/chatHub'.")
  }
  if (typeof name !== 'string' || name === '') {
    throw new InvalidOptionError('name', `expected a non-empty string, got ${JSON.stringify(name)}`, 'Leave it out to use the path.')
  }
  for (const [hook, value] of [['authenticate', authenticate], ['onConnected', onConnected], ['onDisconnected', onDisconnected]] as const) {
    if (value !== undefined && typeof value !== 'function') {
      throw new InvalidOptionError(hook, `expected a function, got ${typeof value}`, 'Pass a function or leave it out.')
    }
  }
  if (!Array.isArray(protocols) || protocols.length === 0) {
    throw new InvalidOptionError('protocols', 'expected a non-empty array of hub protocols', 'Leave it out to speak JSON.')
  }

  return {
    path,
    name,
    methods: resolveMethods(options.methods ?? {}),
    authenticate,
    onConnected,
    onDisconnected,
    protocols,
    keepAliveInterval: positiveNumber(options, 'keepAliveInterval', 15_000),
    clientTimeoutInterval: positiveNumber(options, 'clientTimeoutInterval', 30_000),
    handshakeTimeout: positiveNumber(options, 'handshakeTimeout', 15_000),
    maximumReceiveMessageSize: positiveNumber(options, 'maximumReceiveMessageSize', 32 * 1024),
    maximumOutgoingBufferSize: positiveNumber(options, 'maximumOutgoingBufferSize', 1024 * 1024),
    maximumParallelInvocationsPerClient: positiveNumber(options, 'maximumParallelInvocationsPerClient', 1),
    maximumQueuedInvocationsPerClient: positiveNumber(options, 'maximumQueuedInvocationsPerClient', 100),
    streamBufferCapacity: positiveNumber(options, 'streamBufferCapacity', 10),
    clientResultTimeout: positiveNumber(options, 'clientResultTimeout', 30_000),
    negotiateSecret: resolveSecret(options.negotiateSecret),
    connectionTokenLifetime: positiveNumber(options, 'connectionTokenLifetime', 60_000),
    enableDetailedErrors: options.enableDetailedErrors === true,
    closeTimeout: positiveNumber(options, 'closeTimeout', 2000)
  }
}

function resolveMethods (methods: Record<string, HubMethod> | Map<string, HubMethod>): ResolvedHubOptions['methods'] {
  const entries = methods instanceof Map ? [...methods] : Object.entries(methods)
  const resolved: ResolvedHubOptions['methods'] = new Map()

  for (const [name, method] of entries) {
    if (typeof method !== 'function') {
      throw new InvalidOptionError(`methods.${name}`, `expected a function, got ${typeof method}`, 'Every hub method must be a function (context, ...args) => result.')
    }
    const key = name.toLowerCase()
    const existing = resolved.get(key)
    if (existing !== undefined) {
      throw new InvalidOptionError(`methods.${name}`, `clashes with "${existing.name}" because method names match case-insensitively`, 'Rename one of them.')
    }
    resolved.set(key, { name, method })
  }
  return resolved
}

function resolveSecret (secret: unknown): string | undefined {
  if (secret === undefined || secret === '') return undefined
  if (typeof secret !== 'string' || secret.length < 16) {
    throw new InvalidOptionError('negotiateSecret', 'expected a string of at least 16 characters', 'Generate one with: openssl rand -hex 32')
  }
  return secret
}

function positiveNumber (options: HubOptions, key: keyof HubOptions, fallback: number): number {
  const value = options[key] ?? fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidOptionError(key, `expected a positive number, got ${String(value)}`, `Leave it out for ${fallback}.`)
  }
  return value
}
