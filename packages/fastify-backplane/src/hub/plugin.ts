import { randomBytes } from 'node:crypto'
import fastifyWebsocket from '@fastify/websocket'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import {
  ConnectionTokenReusedError,
  UnauthorizedError,
  WebSocketsOnlyError
} from '../errors.js'
import type { ConnectionIdentity } from './connection.js'
import { ConnectionTokens } from './connection-token.js'
import { Hub } from './hub.js'
import { resolveHubOptions } from './options.js'
import type { HubOptions, ResolvedHubOptions } from './options.js'

/**
 * Registers a WebSocket-only SignalR hub: the hub route, and `{path}/negotiate` for clients
 * that do not skip negotiation. Needs the backplane plugin, and registers `@fastify/websocket`
 * unless the app already has.
 */
async function hubPlugin (fastify: FastifyInstance, options: HubOptions): Promise<void> {
  const settings = resolveHubOptions(options)
  const hub = new Hub(settings, fastify.backplane, fastify.log)
  const tokens = new ConnectionTokens(settings.negotiateSecret ?? randomBytes(32).toString('hex'), settings.name, settings.connectionTokenLifetime)
  let warnedAboutSecret = false
  const identities = new WeakMap<FastifyRequest, ConnectionIdentity>()

  // Registered before @fastify/websocket's own preClose, so clients get a Close message that
  // lets them reconnect elsewhere before the sockets are torn down.
  fastify.addHook('preClose', async () => {
    await hub.close()
  })
  if (!fastify.hasDecorator('websocketServer')) {
    // Compression off: per-message deflate costs CPU and memory for every socket. A frame may
    // batch several messages, so its limit is a multiple of the message limit.
    await fastify.register(fastifyWebsocket, {
      options: { perMessageDeflate: false, maxPayload: Math.max(1024 * 1024, 4 * settings.maximumReceiveMessageSize) }
    })
  }

  // One route serves both: @fastify/websocket hands upgrades to wsHandler and plain HTTP
  // requests to handler. Hooks run before the upgrade, so a rejected request never opens a
  // WebSocket.
  fastify.route({
    method: 'GET',
    url: settings.path,
    preValidation: async (request, reply) => {
      const userId = await authenticate(settings, request, reply)
      if (userId === false) return
      const connectionId = await redeemConnectionToken(fastify, settings, tokens, request, reply)
      if (connectionId === false) return
      identities.set(request, { userId, connectionId })
    },
    wsHandler: (socket, request) => hub.accept(socket, request, identities.get(request) ?? {}),
    handler: rejectWithoutUpgrade(settings)
  })

  // Long polling sends with POST and stops with DELETE; neither is offered here.
  fastify.route({ method: ['POST', 'DELETE'], url: settings.path, handler: rejectWithoutUpgrade(settings) })

  fastify.post(`${settings.path}/negotiate`, async (request, reply) => {
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
