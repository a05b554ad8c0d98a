import fastifyWebsocket from '@fastify/websocket'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { WebSocketsOnlyError } from '../errors.js'
import { Hub } from './hub.js'
import { resolveHubOptions } from './options.js'
import type { HubOptions } from './options.js'

/**
 * Registers a WebSocket-only SignalR hub route. Needs the backplane plugin, and registers
 * `@fastify/websocket` unless the app already has.
 */
async function hubPlugin (fastify: FastifyInstance, options: HubOptions): Promise<void> {
  const settings = resolveHubOptions(options)
  const hub = new Hub(settings, fastify.backplane, fastify.log)

  // Registered before @fastify/websocket's own preClose, so clients get a Close message that
  // lets them reconnect elsewhere before the sockets are torn down.
  fastify.addHook('preClose', async () => {
    await hub.close()
  })
  if (!fastify.hasDecorator('websocketServer')) {
    await fastify.register(fastifyWebsocket)
  }

  // One route serves both: @fastify/websocket hands upgrades to wsHandler and plain HTTP
  // requests to handler.
  fastify.route({
    method: 'GET',
    url: settings.path,
    wsHandler: (socket, request) => hub.accept(socket, request),
    handler: (request, reply) => {
      request.log.info({ hub: settings.name }, 'rejected a hub request without a WebSocket upgrade')
      return reply.code(400).send(new WebSocketsOnlyError(settings.path))
    }
  })

  await hub.start()
  fastify.log.info({ hub: settings.name, path: settings.path }, 'hub ready')
}

/** The hub plugin: a WebSocket route that speaks the SignalR hub protocol. */
export const hub = fp(hubPlugin, {
  fastify: '5.x',
  name: 'fastify-backplane-hub',
  dependencies: ['fastify-backplane'],
  encapsulate: false
})
