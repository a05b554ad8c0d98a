import fastifyWebsocket from '@fastify/websocket'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { UnauthorizedError, WebSocketsOnlyError } from '../errors.js'
import { Hub } from './hub.js'
import { resolveHubOptions } from './options.js'
import type { HubOptions, ResolvedHubOptions } from './options.js'

/**
 * Registers a WebSocket-only SignalR hub route. Needs the backplane plugin, and registers
 * `@fastify/websocket` unless the app already has.
 */
async function hubPlugin (fastify: FastifyInstance, options: HubOptions): Promise<void> {
  const settings = resolveHubOptions(options)
  const hub = new Hub(settings, fastify.backplane, fastify.log)
  const userIds = new WeakMap<FastifyRequest, string>()

  // Registered before @fastify/websocket's own preClose, so clients get a Close message that
  // lets them reconnect elsewhere before the sockets are torn down.
  fastify.addHook('preClose', async () => {
    await hub.close()
  })
  if (!fastify.hasDecorator('websocketServer')) {
    await fastify.register(fastifyWebsocket)
  }

  // One route serves both: @fastify/websocket hands upgrades to wsHandler and plain HTTP
  // requests to handler. Hooks run before the upgrade, so a failed authentication never
  // opens a WebSocket.
  fastify.route({
    method: 'GET',
    url: settings.path,
    preValidation: async (request, reply) => authenticate(settings, userIds, request, reply),
    wsHandler: (socket, request) => hub.accept(socket, request, userIds.get(request)),
    handler: (request, reply) => {
      request.log.info({ hub: settings.name }, 'rejected a hub request without a WebSocket upgrade')
      return reply.code(400).send(new WebSocketsOnlyError(settings.path))
    }
  })

  await hub.start()
  fastify.log.info({ hub: settings.name, path: settings.path }, 'hub ready')
}

async function authenticate (settings: ResolvedHubOptions, userIds: WeakMap<FastifyRequest, string>, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (settings.authenticate === undefined) return
  let userId: string | undefined | false
  try {
    userId = await settings.authenticate(request, bearerToken(request))
  } catch (err) {
    request.log.info({ err, hub: settings.name }, 'hub authentication failed')
    userId = false
  }

  if (userId === false) {
    await reply.code(401).send(new UnauthorizedError(settings.path))
    return
  }
  if (userId !== undefined) userIds.set(request, String(userId))
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
