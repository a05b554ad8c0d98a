import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import fastifyWebsocket from '@fastify/websocket'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { ThrottledWarnings } from '../backplane/throttled-log.js'
import {
  ConnectionTokenReusedError,
  OriginNotAllowedError,
  TooManyConnectionsError,
  TooManyConnectionsFromAddressError,
  UnauthorizedError,
  WebSocketsOnlyError
} from '../errors.js'
import type { ConnectionIdentity } from './connection.js'
import { ConnectionTokens } from './connection-token.js'
import { GuardedHub } from './guarded-hub.js'
import { addressKey, ConnectionLimiter } from './limits.js'
import { resolveHubOptions } from './options.js'
import type { HubOptions, ResolvedHubOptions } from './options.js'
import { isOriginAllowed, ownOrigin } from './origin.js'

/**
 * Registers a WebSocket-only SignalR hub: the hub route, and `{path}/negotiate` for clients
 * that do not skip negotiation. Needs the backplane plugin, and registers `@fastify/websocket`
 * unless the app already has.
 */
async function hubPlugin (fastify: FastifyInstance, options: HubOptions): Promise<void> {
  const settings = resolveHubOptions(options)
  const hub = new GuardedHub(settings, fastify.backplane, fastify.log)
  const limiter = new ConnectionLimiter(settings.maximumConnections, settings.maximumConnectionsPerIp)
  const limitWarnings = new ThrottledWarnings(fastify.log)
  const tokens = new ConnectionTokens(settings.negotiateSecret ?? randomBytes(32).toString('hex'), settings.name, settings.connectionTokenLifetime)
  let warnedAboutSecret = false
  // What preValidation learned about each upgrade request, for wsHandler.
  const upgrades = new WeakMap<FastifyRequest, { identity: ConnectionIdentity, response: ServerResponse }>()

  // Registered before @fastify/websocket's own preClose, so clients get a Close message that
  // lets them reconnect elsewhere before the sockets are torn down.
  fastify.addHook('preClose', async () => {
    // From now on Fastify responds to requests with 503 (its default return503OnClosing) without
    // running hooks, so @fastify/websocket leaves an upgrade's socket open after that response,
    // and app.close() would wait for that socket forever. This ends the socket of every upgrade
    // that arrives from now on, once the response is written.
    // NOTE: with return503OnClosing: false it also cuts upgrades to the app's own WebSocket
    // routes during shutdown.
    fastify.server.on('upgrade', endRefusedUpgrade)
    await hub.close()
  })
  if (!fastify.hasDecorator('websocketServer')) {
    // Compression off: per-message deflate costs CPU and memory for every socket.
    await fastify.register(fastifyWebsocket, {
      options: { perMessageDeflate: false, maxPayload: settings.maximumWebSocketMessageSize },
      errorHandler: logWebSocketError
    })
  } else {
    warnAboutWebSocketServer(fastify, settings)
  }

  // Shared by every socket, so that holding a place costs a connection no closure of its own.
  const releasePlace = (): void => limiter.release(undefined)
  // The release of each place that `admit` reserved, from the request until the upgrade.
  const places = new WeakMap<FastifyRequest, () => void>()

  /**
   * Hands the place that `admit` reserved for an upgraded request to its hub connection, which
   * releases it when the WebSocket closes. The TCP socket's listener goes, because a second
   * `close` listener costs each idle connection an array of about 200 bytes.
   */
  const takePlace = (request: FastifyRequest): (() => void) | undefined => {
    const release = places.get(request)
    if (release === undefined) return undefined
    places.delete(request)
    request.raw.socket?.removeListener('close', release)
    return release
  }

  // Runs before the body is read and before authentication, so that cross-site requests and
  // requests over a limit cost as little as possible.
  const admit = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (!await isOriginAllowed(settings.allowedOrigins, request)) {
      const err = new OriginNotAllowedError(String(request.headers.origin), settings.path)
      request.log.info({ err, hub: settings.name, origin: request.headers.origin, ownOrigin: ownOrigin(request) }, 'hub rejected a request from another origin')
      await reply.code(403).send(err)
      return
    }
    // Only upgrade requests open a connection; plain requests get 400 from the handler.
    if (request.ws !== true) return

    const address = limiter.countsAddresses ? addressKey(request.ip ?? '') : undefined
    const limitReached = limiter.reserve(address)
    if (limitReached === undefined) {
      // Until the upgrade, the TCP socket's close releases the place, so a request that is
      // rejected or whose client goes away gives it back. A socket emits 'close' once.
      const socket = request.raw.socket as Socket | undefined
      if (socket === undefined || socket.destroyed) {
        limiter.release(address)
        return
      }
      const release = address === undefined ? releasePlace : () => limiter.release(address)
      socket.on('close', release)
      places.set(request, release)
      return
    }
    const err = limitReached === 'instance'
      ? new TooManyConnectionsError(settings.path, settings.maximumConnections)
      : new TooManyConnectionsFromAddressError(address!, settings.maximumConnectionsPerIp, settings.path)
    limitWarnings.warn(err.code, { err, hub: settings.name }, 'hub rejected a connection over its limit')
    await reply.code(limitReached === 'instance' ? 503 : 429).send(err)
  }

  // One route serves both: @fastify/websocket hands upgrades to wsHandler and plain HTTP
  // requests to handler. Hooks run before the upgrade, so a rejected request never opens a
  // WebSocket.
  fastify.route({
    method: 'GET',
    url: settings.path,
    onRequest: admit,
    preValidation: async (request, reply) => {
      const userId = await authenticate(settings, request, reply)
      if (userId === false) return
      const connectionId = await redeemConnectionToken(fastify, settings, tokens, request, reply)
      if (connectionId === false) return
      upgrades.set(request, { identity: { userId, connectionId }, response: reply.raw })
    },
    wsHandler: (socket, request) => {
      const upgrade = upgrades.get(request)
      releaseUpgrade(socket, upgrade?.response)
      hub.accept(socket, request, upgrade?.identity ?? {}, takePlace(request))
    },
    handler: rejectWithoutUpgrade(settings)
  })

  // Long polling sends with POST and stops with DELETE; neither is offered here.
  fastify.route({ method: ['POST', 'DELETE'], url: settings.path, handler: rejectWithoutUpgrade(settings) })

  fastify.post(`${settings.path}/negotiate`, { onRequest: admit }, async (request, reply) => {
    const userId = await authenticate(settings, request, reply)
    if (userId === false) return reply
    if (settings.negotiateSecret === undefined && !warnedAboutSecret) {
      // Warned on the first negotiation, not at startup, because apps whose clients all skip
      // negotiation never need the secret.
      warnedAboutSecret = true
      request.log.warn({ hub: settings.name }, 'hub has no negotiateSecret, so negotiated connection tokens work only on the instance that issued them; set the same secret on every instance, or have clients skip negotiation')
    }
    const { connectionId, connectionToken } = tokens.issue()
    request.log.debug({ hub: settings.name, connectionId }, 'hub negotiated a connection')
    return {
      negotiateVersion: 1,
      connectionId,
      connectionToken,
      availableTransports: [{ transport: 'WebSockets', transferFormats: ['Text', 'Binary'] }]
    }
  })

  await hub.start()
  fastify.log.info({ hub: settings.name, path: settings.path }, 'hub ready')
  if (settings.allowedOrigins.kind === 'same-origin') {
    fastify.log.info({ hub: settings.name }, 'hub accepts browser connections from its own origin only; set allowedOrigins to allow pages on other origins')
  }
}

/**
 * Lets go of what `@fastify/websocket` would keep for the WebSocket's whole life: the upgrade's
 * `ServerResponse`, still attached to the TCP socket, and an `error` listener that references
 * the request and the reply. With both gone, and the hub connection keeping the request only until
 * `onConnected`, an idle connection keeps about 2.6 KiB less (BENCHMARKS.md). The hub connection
 * adds its own `error` listener, which logs and drops the socket, so an `errorHandler` that the
 * app gave its own `@fastify/websocket` does not see the hub's sockets.
 */
function releaseUpgrade (socket: WebSocket, response: ServerResponse | undefined): void {
  socket.removeAllListeners('error')
  if (response?.socket != null) response.detachSocket(response.socket)
}

/** Ends the socket of an upgrade request that arrived while the app closes, once Fastify's 503 is out. */
function endRefusedUpgrade (_request: IncomingMessage, socket: Duplex): void {
  socket.end(() => socket.destroy())
}

/**
 * Logs an error that the hub's WebSocket handler threw, and drops the socket. Errors of the
 * socket itself go to the hub connection's own listener (see `releaseUpgrade`).
 */
function logWebSocketError (error: Error, socket: WebSocket, request: FastifyRequest): void {
  request.log.error({ err: error }, 'hub WebSocket handler failed')
  socket.terminate()
}

/**
 * Warns when the app's own `@fastify/websocket` buffers larger messages than the hub allows,
 * because the hub cannot change that server's `maxPayload`.
 */
function warnAboutWebSocketServer (fastify: FastifyInstance, settings: ResolvedHubOptions): void {
  const maxPayload = (fastify.websocketServer.options as { maxPayload?: number }).maxPayload
  if (maxPayload === undefined || maxPayload > settings.maximumWebSocketMessageSize) {
    fastify.log.warn({ hub: settings.name, maxPayload, maximumWebSocketMessageSize: settings.maximumWebSocketMessageSize }, 'the app registered @fastify/websocket with a maxPayload above the hub\'s maximumWebSocketMessageSize, so one WebSocket message can hold that much memory; pass options: { maxPayload } when registering it')
  }
}

/**
 * Runs the app's authenticate option. Returns the user id, undefined for an anonymous
 * connection, or false after replying 401.
 */
async function authenticate (settings: ResolvedHubOptions, request: FastifyRequest, reply: FastifyReply): Promise<string | undefined | false> {
  if (settings.authenticate === undefined) return undefined
  let userId: string | undefined | false
  try {
    userId = await settings.authenticate(request, bearerToken(request))
  } catch (err) {
    request.log.info({ err, hub: settings.name }, 'hub authentication failed')
    userId = false
  }

  if (userId === false) {
    await reply.code(401).send(new UnauthorizedError(settings.path))
    return false
  }
  return userId === undefined ? undefined : String(userId)
}

/**
 * Checks the `id` query parameter of a negotiated connection: a valid, unexpired token for this
 * hub that no other WebSocket used. Returns the connection id, undefined when negotiation was
 * skipped, or false after replying 404 (unknown token) or 409 (token already used), as
 * ASP.NET Core does.
 */
async function redeemConnectionToken (fastify: FastifyInstance, settings: ResolvedHubOptions, tokens: ConnectionTokens, request: FastifyRequest, reply: FastifyReply): Promise<string | undefined | false> {
  const token = (request.query as Record<string, unknown> | undefined)?.id
  if (token === undefined) return undefined

  let connectionId: string
  try {
    connectionId = tokens.verify(String(token)).connectionId
  } catch (err) {
    request.log.info({ err, hub: settings.name }, 'hub rejected a connection token')
    await reply.code(404).send(err)
    return false
  }

  if (!await fastify.backplane.claimConnection(settings.name, connectionId, settings.connectionTokenLifetime)) {
    const err = new ConnectionTokenReusedError()
    request.log.info({ err, hub: settings.name, connectionId }, 'hub rejected a reused connection token')
    await reply.code(409).send(err)
    return false
  }
  return connectionId
}

function rejectWithoutUpgrade (settings: ResolvedHubOptions) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    request.log.info({ hub: settings.name, method: request.method }, 'rejected a hub request without a WebSocket upgrade')
    return reply.code(400).send(new WebSocketsOnlyError(settings.path))
  }
}

/** Reads the bearer token from the `access_token` query parameter or the Authorization header. */
function bearerToken (request: FastifyRequest): string | undefined {
  const query = request.query as Record<string, unknown> | undefined
  if (typeof query?.access_token === 'string' && query.access_token !== '') return query.access_token
  const match = /^Bearer\s+(.+)$/i.exec(request.headers.authorization ?? '')
  return match?.[1]
}

/** The hub plugin: a WebSocket route that speaks the SignalR hub protocol. */
export const hub = fp(hubPlugin, {
  fastify: '5.x',
  name: 'fastify-backplane-hub',
  dependencies: ['fastify-backplane'],
  encapsulate: false
})
