import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { connectTransport } from '../transport/connect.js'
import { Backplane } from './backplane.js'
import type { BroadcastFunction } from './backplane.js'
import { resolveBackplaneOptions } from './options.js'
import type { BackplaneOptions } from './options.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Invokes a client method on the hub connections of every instance. */
    broadcast: BroadcastFunction
    /** The backplane behind `broadcast()`: its instance id, transport and connection state. */
    backplane: Backplane
  }
}

async function backplanePlugin (fastify: FastifyInstance, options: BackplaneOptions): Promise<void> {
  const settings = resolveBackplaneOptions(options)
  const transport = await connectTransport(fastify, settings)
  const backplane = new Backplane({
    transport,
    instanceId: settings.instanceId,
    channelPrefix: settings.channelPrefix,
    log: fastify.log,
    groupCommandTimeout: settings.groupCommandTimeout,
    presenceTimeout: settings.presenceTimeout,
    clientResultTimeout: settings.clientResultTimeout,
    healthCheckInterval: settings.healthCheckInterval
  })
  await backplane.start()

  fastify.decorate('backplane', backplane)
  fastify.decorate('broadcast', backplane.broadcast.bind(backplane))
  fastify.addHook('onClose', async () => {
    await backplane.close()
  })
}

/** The backplane plugin: decorates the instance with `broadcast()` and `backplane`. */
export const backplane = fp(backplanePlugin, {
  fastify: '5.x',
  name: 'fastify-backplane'
})
