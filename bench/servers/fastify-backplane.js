// fastify-backplane under test: Fastify with the backplane and hub plugins, default hub options
// (JSON and MessagePack, so each broadcast is encoded twice). BENCH_FASTIFY_JSON_ONLY=1 offers
// only the JSON protocol, to measure what the second encoding costs.
// BENCH_MAXIMUM_WRITE_DELAY=N sets the hub's `maximumWriteDelay` in ms instead of its default.
//
// BENCH_FASTIFY_BACKPLANE_MODULE, a path or file URL, loads another build of the library, such
// as one exported from a commit, in place of packages/fastify-backplane/dist.
import Fastify from 'fastify'
import { runServer } from './harness.js'

const jsonOnly = process.env.BENCH_FASTIFY_JSON_ONLY === '1'
const maximumWriteDelay = process.env.BENCH_MAXIMUM_WRITE_DELAY === undefined ? undefined : Number(process.env.BENCH_MAXIMUM_WRITE_DELAY)
const libraryModule = process.env.BENCH_FASTIFY_BACKPLANE_MODULE ?? new URL('../../packages/fastify-backplane/dist/index.js', import.meta.url).href
const { backplane, hub, jsonHubProtocol } = await import(libraryModule.startsWith('/') ? `file://${libraryModule}` : libraryModule)

runServer(async ({ redisUrl, instance }) => {
  const app = Fastify({ logger: { level: 'warn' } })
  await app.register(backplane, { redis: redisUrl, channelPrefix: 'bench:', instanceId: `bench-${instance}` })
  await app.register(hub, {
    path: '/hub',
    ...(jsonOnly ? { protocols: [jsonHubProtocol] } : {}),
    ...(maximumWriteDelay === undefined ? {} : { maximumWriteDelay }),
    methods: {
      async Join (context, group) {
        await context.groups.add(group)
      }
    }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })

  return {
    port: app.server.address().port,
    broadcast: (payload) => { void app.broadcast('tick', [payload]) },
    broadcastToGroup: (group, payload) => { void app.broadcast('tick', [payload], { group }) },
    close: () => app.close()
  }
})
