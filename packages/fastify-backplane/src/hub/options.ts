import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { HubContext } from '../backplane/backplane.js'
import type { ClientMethodMap, ClientMethods, ClientProxy, HubClients, SingleClientProxy } from '../backplane/clients.js'
import type { BroadcastOptions } from '../backplane/targets.js'
import { InvalidOptionError } from '../errors.js'
import { describeValue } from '../describe-value.js'
import { rejectUnknownOptions } from '../unknown-options.js'
import { jsonHubProtocol } from '../protocol/json.js'
import { resolveLimit } from './limits.js'
import { resolveAllowedOrigins } from './origin.js'
import type { HubOriginCheck, OriginPolicy } from './origin.js'
import { createArgumentValidatorCompiler, resolveMethodDefinition } from './schema.js'
import type { ResolvedHubMethod } from './schema.js'
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
  /** A child of the app logger that carries the upgrade request id (`reqId`), the connection id and the hub. */
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

/**
 * Decides whether the connection may invoke `method` (its declared name) with `args`, after
 * the arguments passed the method's schema and before the method runs. Only `true` allows it.
 * Anything else rejects the invocation with ASP.NET Core's text "Failed to invoke 'X' because
 * user is unauthorized"; a thrown HubException's message reaches the client instead.
 */
export type HubAuthorize = (context: HubConnectionContext, method: string, args: unknown[]) => boolean | Promise<boolean>

/**
 * Decides whether the connection may join `group` through `context.groups.add()`. Only `true`
 * allows it; otherwise the join rejects with FST_BACKPLANE_GROUP_FORBIDDEN.
 */
export type HubAuthorizeGroup = (context: HubConnectionContext, group: string) => boolean | Promise<boolean>

/** A hub method with options, accepted in `methods` next to plain functions. */
export interface HubMethodDefinition {
  /** The method itself. */
  handler: HubMethod
  /**
   * JSON Schema (draft-07, checked by Ajv 8) of the arguments array, without upload streams.
   * Invalid arguments get an error Completion with FST_BACKPLANE_INVALID_ARGUMENTS and the
   * failing path, and the method does not run.
   */
  schema?: object | undefined
  /** Authorization for this method only, run after the hub's `authorize` option. */
  authorize?: HubAuthorize | undefined
}

/** Options of the hub plugin. Durations are in milliseconds. */
export interface HubOptions {
  /** The URL path of the WebSocket route, such as `/chatHub`. Required. */
  path: string
  /**
   * The hub's name, which `broadcast({ hub })` uses. Every instance must use the same name.
   * @default the path
   */
  name?: string | undefined
  /**
   * The methods that clients may invoke, by name. Names match case-insensitively, as in
   * ASP.NET Core SignalR; only own properties of a plain object count.
   * @default {}
   */
  methods?: Record<string, HubMethod | HubMethodDefinition> | Map<string, HubMethod | HubMethodDefinition> | undefined
  /**
   * Verifies each connection request before the upgrade and returns its user id.
   * @default undefined (every connection is anonymous)
   */
  authenticate?: HubAuthenticate | undefined
  /**
   * Runs after a successful handshake, before any invocation of that connection. `request` is
   * the HTTP request that opened the WebSocket (headers, query string, `request.ip`). The hub
   * does not keep it after this call, so that idle connections stay small: copy what hub
   * methods need into `context.items`.
   */
  onConnected?: ((context: HubConnectionContext, request: FastifyRequest) => unknown) | undefined
  /** Runs after a connection closed, with the error that closed it, if any. */
  onDisconnected?: ((context: HubConnectionContext, error?: Error) => unknown) | undefined
  /**
   * The hub protocols that clients may ask for in the handshake. Each broadcast is encoded
   * once for every protocol listed here.
   * @default [jsonHubProtocol, messagePackHubProtocol]
   */
  protocols?: HubProtocol[] | undefined
  /**
   * The server sends a Ping when it has sent nothing else for this long. The hub checks four
   * times per interval, so the Ping can come up to a quarter of it later. Keep it below the
   * 55 s after which Heroku's router closes an idle connection.
   * @default 15000
   */
  keepAliveInterval?: number | undefined
  /**
   * The server closes a connection from which nothing arrived for this long. Clients ping every
   * 15 s by default, so keep it well above that.
   * @default 30000
   */
  clientTimeoutInterval?: number | undefined
  /**
   * How long a new WebSocket may take to send its handshake.
   * @default 15000
   */
  handshakeTimeout?: number | undefined
  /**
   * The largest incoming hub message, in bytes. A larger one closes the connection with an error.
   * @default 32768
   */
  maximumReceiveMessageSize?: number | undefined
  /**
   * The maximum number of bytes that may wait unsent on one connection's socket. A client that
   * reads slower than messages arrive is closed with a Close message that allows reconnecting,
   * so that it cannot grow server memory. Other clients are unaffected. The default is an estimate that
   * leaves room for bursts of a few thousand small messages.
   * @default 1048576 (1 MiB)
   */
  maximumOutgoingBufferSize?: number | undefined
  /**
   * The longest time, in milliseconds, that a busy hub keeps frames waiting so that it writes
   * more of them per system call. After the hub has written to its sockets, it waits three times
   * as long as that took before it writes again, at most this long. It waits only when another
   * frame is likely to arrive first. Unless the last two gaps between frames were both shorter
   * than what is left of the wait, a frame is written at the end of its turn. A hub with few
   * sockets writes in well under a millisecond, so its frames go out at the end of the
   * event-loop turn that queued them, as they always do with 0. Timers cannot wait less than
   * 1 ms, so shorter waits also end with the turn.
   * @default 10
   */
  maximumWriteDelay?: number | undefined
  /**
   * How many invocations of one connection run at the same time. The others wait in arrival order.
   * @default 1
   */
  maximumParallelInvocationsPerClient?: number | undefined
  /**
   * How many invocations of one connection may wait for a free slot; past this bound the
   * client gets an error Completion.
   * @default 100
   */
  maximumQueuedInvocationsPerClient?: number | undefined
  /**
   * How many items of one upload stream wait for the hub method to read them. When the buffer
   * is full the server stops reading from that client's socket until the method catches up.
   * @default 10
   */
  streamBufferCapacity?: number | undefined
  /**
   * How long the server waits for a client to return a result for `invoke()`.
   * @default 30000
   */
  clientResultTimeout?: number | undefined
  /**
   * The secret that signs negotiated connection tokens. Every instance needs the same secret,
   * so that a WebSocket opened on any instance accepts a token issued by another. Without it,
   * each process uses a random secret and logs a warning.
   * @default a random secret per process
   */
  negotiateSecret?: string | undefined
  /**
   * How long a negotiated connection token stays valid.
   * @default 60000
   */
  connectionTokenLifetime?: number | undefined
  /**
   * Whether clients see the type and message of any error a hub method throws, not only of a
   * HubException. Leave it off in production: messages can reveal internals.
   * @default false
   */
  enableDetailedErrors?: boolean | undefined
  /**
   * How long closing Fastify waits for clients to acknowledge the WebSocket close before the
   * sockets are dropped.
   * @default 2000
   */
  closeTimeout?: number | undefined
  /**
   * The origins whose browser pages may connect, such as `['https://app.example.com']`, `['*']`
   * for any, or a function that decides. Without it, only the hub's own origin may connect:
   * the Origin header must equal `request.protocol` and `request.host`, so behind a proxy
   * that terminates TLS, such as Heroku's router, turn on Fastify's `trustProxy`. Requests
   * without an Origin header come from non-browser clients and are not checked. A rejected
   * upgrade or negotiate request gets 403 with FST_BACKPLANE_ORIGIN_NOT_ALLOWED.
   * @default undefined (same origin only)
   */
  allowedOrigins?: readonly string[] | HubOriginCheck | undefined
  /**
   * Authorizes every invocation; see `HubAuthorize`. Methods can add their own check.
   * @default undefined (every method may be invoked)
   */
  authorize?: HubAuthorize | undefined
  /**
   * Authorizes every group join through `context.groups.add()`; see `HubAuthorizeGroup`.
   * @default undefined (any group may be joined)
   */
  authorizeGroup?: HubAuthorizeGroup | undefined
  /**
   * How many connections this hub accepts on this instance, counted from the upgrade request,
   * so sockets still in their handshake count too. Further upgrade requests get 503 with
   * FST_BACKPLANE_TOO_MANY_CONNECTIONS. The default is an estimate: size it to the memory of
   * one instance.
   * @default 10000
   */
  maximumConnections?: number | undefined
  /**
   * How many connections one client address may hold to this hub on this instance. The
   * address is `request.ip`, which is the proxy's address unless Fastify's `trustProxy` is on;
   * IPv6 addresses count per /64 network. Further upgrade requests get 429 with
   * FST_BACKPLANE_TOO_MANY_CONNECTIONS_FROM_ADDRESS. Off by default, because without
   * `trustProxy` every client behind a router shares one address.
   * @default Infinity (no limit)
   */
  maximumConnectionsPerIp?: number | undefined
  /**
   * How many invocations one connection may start per second, as a token bucket that stores
   * one second's worth. Each invocation past it gets an error Completion with
   * FST_BACKPLANE_RATE_LIMITED and does not run.
   * @default 100
   */
  maximumInvocationsPerSecond?: number | undefined
  /**
   * How many invocations over the rate limit a connection may send before its bucket refills
   * completely. The next one closes the connection with FST_BACKPLANE_RATE_LIMIT_CLOSED and
   * WebSocket code 1008, without allowing reconnects.
   * @default 100
   */
  maximumRateLimitedInvocations?: number | undefined
  /**
   * How many upload streams one connection may have open at once. An invocation that would
   * open more gets an error Completion with FST_BACKPLANE_TOO_MANY_UPLOAD_STREAMS.
   * @default 10
   */
  maximumUploadStreamsPerClient?: number | undefined
  /**
   * How many groups one connection may be in. `context.groups.add()` past it rejects with
   * FST_BACKPLANE_TOO_MANY_GROUPS. Each group a connection joins can cost a Redis subscription.
   * @default 100
   */
  maximumGroupsPerClient?: number | undefined
  /**
   * The maximum length of an invocation id or stream id from a client, in characters. A longer one
   * closes the connection with FST_BACKPLANE_ID_TOO_LONG. Official clients send short counters.
   * @default 128
   */
  maximumInvocationIdLength?: number | undefined
  /**
   * The maximum length of a method name that a client invokes, in characters. A longer one gets an error
   * Completion with FST_BACKPLANE_METHOD_NAME_TOO_LONG. Every name in `methods` must fit.
   * @default 128
   */
  maximumMethodNameLength?: number | undefined
  /**
   * The largest WebSocket message, in bytes, that the server buffers before the hub reads it.
   * A larger one closes the socket with WebSocket code 1009. It is `maxPayload` of the ws
   * server, so it applies only when the hub registers `@fastify/websocket` itself, and then
   * to every WebSocket route of the app. A client may batch several hub messages into one
   * WebSocket message, so the default leaves room for that.
   * @default the larger of 1048576 (1 MiB) and 4 × maximumReceiveMessageSize
   */
  maximumWebSocketMessageSize?: number | undefined
}

export interface ResolvedHubOptions {
  path: string
  name: string
  methods: Map<string, ResolvedHubMethod>
  authenticate: HubAuthenticate | undefined
  onConnected: HubOptions['onConnected']
  onDisconnected: HubOptions['onDisconnected']
  protocols: HubProtocol[]
  keepAliveInterval: number
  clientTimeoutInterval: number
  handshakeTimeout: number
  maximumReceiveMessageSize: number
  maximumOutgoingBufferSize: number
  maximumWriteDelay: number
  maximumParallelInvocationsPerClient: number
  maximumQueuedInvocationsPerClient: number
  streamBufferCapacity: number
  clientResultTimeout: number
  negotiateSecret: string | undefined
  connectionTokenLifetime: number
  enableDetailedErrors: boolean
  closeTimeout: number
  allowedOrigins: OriginPolicy
  authorize: HubAuthorize | undefined
  authorizeGroup: HubAuthorizeGroup | undefined
  maximumConnections: number
  maximumConnectionsPerIp: number
  maximumInvocationsPerSecond: number
  maximumRateLimitedInvocations: number
  maximumUploadStreamsPerClient: number
  maximumGroupsPerClient: number
  maximumInvocationIdLength: number
  maximumMethodNameLength: number
  maximumWebSocketMessageSize: number
}

/** Every option name, for `rejectUnknownOptions()`. The type keeps it in step with the options. */
const OPTION_NAMES: Record<keyof HubOptions, true> = {
  path: true,
  name: true,
  methods: true,
  authenticate: true,
  onConnected: true,
  onDisconnected: true,
  protocols: true,
  keepAliveInterval: true,
  clientTimeoutInterval: true,
  handshakeTimeout: true,
  maximumReceiveMessageSize: true,
  maximumOutgoingBufferSize: true,
  maximumWriteDelay: true,
  maximumParallelInvocationsPerClient: true,
  maximumQueuedInvocationsPerClient: true,
  streamBufferCapacity: true,
  clientResultTimeout: true,
  negotiateSecret: true,
  connectionTokenLifetime: true,
  enableDetailedErrors: true,
  closeTimeout: true,
  allowedOrigins: true,
  authorize: true,
  authorizeGroup: true,
  maximumConnections: true,
  maximumConnectionsPerIp: true,
  maximumInvocationsPerSecond: true,
  maximumRateLimitedInvocations: true,
  maximumUploadStreamsPerClient: true,
  maximumGroupsPerClient: true,
  maximumInvocationIdLength: true,
  maximumMethodNameLength: true,
  maximumWebSocketMessageSize: true
}

export function resolveHubOptions (options: HubOptions): ResolvedHubOptions {
  rejectUnknownOptions(options, OPTION_NAMES)
  const { path, name = path, authenticate, onConnected, onDisconnected, protocols = [jsonHubProtocol, messagePackHubProtocol] } = options

  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw new InvalidOptionError('path', `expected a URL path starting with "/", got ${JSON.stringify(path)}`, "Pass the hub's route, such as '/chatHub'.")
  }
  if (typeof name !== 'string' || name === '') {
    throw new InvalidOptionError('name', `expected a non-empty string, got ${JSON.stringify(name)}`, 'Leave it out to use the path.')
  }
  for (const [hook, value] of [['authenticate', authenticate], ['onConnected', onConnected], ['onDisconnected', onDisconnected], ['authorize', options.authorize], ['authorizeGroup', options.authorizeGroup]] as const) {
    if (value !== undefined && typeof value !== 'function') {
      throw new InvalidOptionError(hook, `expected a function, got ${typeof value}`, 'Pass a function or leave it out.')
    }
  }
  if (!Array.isArray(protocols) || protocols.length === 0) {
    throw new InvalidOptionError('protocols', 'expected a non-empty array of hub protocols', 'Leave it out to speak JSON.')
  }

  const maximumReceiveMessageSize = positiveNumber(options, 'maximumReceiveMessageSize', 32 * 1024)
  const maximumMethodNameLength = resolveLimit(options, 'maximumMethodNameLength', 128)
  const methods = resolveMethods(options.methods ?? {})
  for (const { name: method } of methods.values()) {
    if (method.length > maximumMethodNameLength) {
      throw new InvalidOptionError(`methods.${method}`, `the name has ${method.length} characters, more than maximumMethodNameLength (${maximumMethodNameLength})`, 'Shorten the name or raise maximumMethodNameLength.')
    }
  }

  return {
    path,
    name,
    methods,
    authenticate,
    onConnected,
    onDisconnected,
    protocols,
    keepAliveInterval: positiveNumber(options, 'keepAliveInterval', 15_000),
    clientTimeoutInterval: positiveNumber(options, 'clientTimeoutInterval', 30_000),
    handshakeTimeout: positiveNumber(options, 'handshakeTimeout', 15_000),
    maximumReceiveMessageSize,
    maximumOutgoingBufferSize: positiveNumber(options, 'maximumOutgoingBufferSize', 1024 * 1024),
    maximumWriteDelay: nonNegativeNumber(options, 'maximumWriteDelay', 10),
    maximumParallelInvocationsPerClient: positiveNumber(options, 'maximumParallelInvocationsPerClient', 1),
    maximumQueuedInvocationsPerClient: positiveNumber(options, 'maximumQueuedInvocationsPerClient', 100),
    streamBufferCapacity: positiveNumber(options, 'streamBufferCapacity', 10),
    clientResultTimeout: positiveNumber(options, 'clientResultTimeout', 30_000),
    negotiateSecret: resolveSecret(options.negotiateSecret),
    connectionTokenLifetime: positiveNumber(options, 'connectionTokenLifetime', 60_000),
    enableDetailedErrors: options.enableDetailedErrors === true,
    closeTimeout: positiveNumber(options, 'closeTimeout', 2000),
    allowedOrigins: resolveAllowedOrigins(options.allowedOrigins),
    authorize: options.authorize,
    authorizeGroup: options.authorizeGroup,
    maximumConnections: resolveLimit(options, 'maximumConnections', 10_000),
    maximumConnectionsPerIp: resolveLimit(options, 'maximumConnectionsPerIp', Infinity, true),
    maximumInvocationsPerSecond: resolveLimit(options, 'maximumInvocationsPerSecond', 100),
    maximumRateLimitedInvocations: resolveLimit(options, 'maximumRateLimitedInvocations', 100),
    maximumUploadStreamsPerClient: resolveLimit(options, 'maximumUploadStreamsPerClient', 10),
    maximumGroupsPerClient: resolveLimit(options, 'maximumGroupsPerClient', 100),
    maximumInvocationIdLength: resolveLimit(options, 'maximumInvocationIdLength', 128),
    maximumMethodNameLength,
    maximumWebSocketMessageSize: resolveLimit(options, 'maximumWebSocketMessageSize', Math.max(1024 * 1024, 4 * maximumReceiveMessageSize))
  }
}

function resolveMethods (methods: NonNullable<HubOptions['methods']>): ResolvedHubOptions['methods'] {
  // Object.entries() would read a string as a list of one-character method names.
  if (typeof methods !== 'object' || methods === null || Array.isArray(methods)) {
    throw new InvalidOptionError('methods', `expected an object or a Map of method names to functions, got ${describeValue(methods)}`, 'Pass { MethodName: (context, ...args) => result }.')
  }
  const entries = methods instanceof Map ? [...methods] : Object.entries(methods)
  const resolved: ResolvedHubOptions['methods'] = new Map()
  const compileSchema = createArgumentValidatorCompiler()

  for (const [name, definition] of entries) {
    const method = resolveMethodDefinition(name, definition, compileSchema)
    const key = name.toLowerCase()
    const existing = resolved.get(key)
    if (existing !== undefined) {
      throw new InvalidOptionError(`methods.${name}`, `clashes with "${existing.name}" because method names match case-insensitively`, 'Rename one of them.')
    }
    resolved.set(key, method)
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

function nonNegativeNumber (options: HubOptions, key: keyof HubOptions, fallback: number): number {
  const value = options[key] === undefined ? fallback : options[key]
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new InvalidOptionError(key, `expected a number of 0 or more, got ${describeValue(value)}`, `Leave it out for ${fallback}.`)
  }
  return value
}

function positiveNumber (options: HubOptions, key: keyof HubOptions, fallback: number): number {
  const value = options[key] === undefined ? fallback : options[key]
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidOptionError(key, `expected a positive number, got ${describeValue(value)}`, `Leave it out for ${fallback}.`)
  }
  return value
}
