import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import fastifyRedis from '@fastify/redis'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { backplane, hub } from '../src/index.js'
import { startInstance } from './helpers/instances.js'
import { connectAdmin, listClients, waitUntil } from './helpers/redis-admin.js'
import type { ClientInfo } from './helpers/redis-admin.js'
import { startRedisServer } from './helpers/redis-server.js'
import type { RedisServer } from './helpers/redis-server.js'
import { connectClient, Received } from './helpers/signalr.js'

/**
 * Starts an app whose plugins `setup` registers in order, with the hub at `/testHub` added
 * last, listening on a free loopback port.
 */
async function startApp (t: TestContext, setup: (app: FastifyInstance) => Promise<void>): Promise<FastifyInstance> {
  const app = Fastify()
  t.after(() => app.close())
  await setup(app)
  await app.register(hub, { path: '/testHub' })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return app
}

/** Checks that broadcasts from `app` reach a client of `other`, and the other way round. */
async function assertBroadcastsCross (t: TestContext, app: FastifyInstance, other: FastifyInstance): Promise<void> {
  const onApp = await connectClient(app, '/testHub')
  const onOther = await connectClient(other, '/testHub')
  t.after(() => onApp.stop())
  t.after(() => onOther.stop())
  const receivedOnApp = new Received(onApp, 'news')
  const receivedOnOther = new Received(onOther, 'news')

  await app.broadcast('news', ['from app'])
  await other.broadcast('news', ['from other'])

  // Each instance delivers its own broadcast at once and the other's through Redis, so the
  // two may arrive in either order.
  assert.deepEqual((await receivedOnOther.waitFor(2)).flat().sort(), ['from app', 'from other'])
  assert.deepEqual((await receivedOnApp.waitFor(2)).flat().sort(), ['from app', 'from other'])
}

async function assertAppRedisWorks (app: FastifyInstance): Promise<void> {
  await app.redis.set('coexistence:key', 'value')
  assert.equal(await app.redis.get('coexistence:key'), 'value')
}

function isSubscriber (client: ClientInfo): boolean {
  return (client.flags ?? '').includes('P')
}

async function assertNoConnectionsLeft (admin: Redis): Promise<void> {
  await waitUntil('every app connection is closed', async () => (await listClients(admin)).length === 0)
}

async function startServer (t: TestContext): Promise<{ redis: RedisServer, admin: Redis }> {
  const redis = await startRedisServer()
  t.after(() => redis.stop())
  return { redis, admin: await connectAdmin(t, redis) }
}

test('app @fastify/redis before backplane', async (t) => {
  const { redis, admin } = await startServer(t)
  const other = await startInstance(t, { backplane: { redis: redis.url } })

  const app = await startApp(t, async (app) => {
    await app.register(fastifyRedis, { host: '127.0.0.1', port: redis.port })
    await app.register(backplane, { redis: redis.url })
  })

  await assertAppRedisWorks(app)
  await assertBroadcastsCross(t, app, other)

  await other.close()
  await app.close()
  await assertNoConnectionsLeft(admin)
})

test('app @fastify/redis after backplane', async (t) => {
  const { redis, admin } = await startServer(t)
  const other = await startInstance(t, { backplane: { redis: redis.url } })

  const app = await startApp(t, async (app) => {
    await app.register(backplane, { redis: redis.url })
    await app.register(fastifyRedis, { host: '127.0.0.1', port: redis.port })
  })

  await assertAppRedisWorks(app)
  await assertBroadcastsCross(t, app, other)

  await other.close()
  await app.close()
  await assertNoConnectionsLeft(admin)
})

test('namespaced @fastify/redis before backplane', async (t) => {
  const { redis, admin } = await startServer(t)
  const other = await startInstance(t, { backplane: { redis: redis.url } })

  const app = await startApp(t, async (app) => {
    await app.register(fastifyRedis, { host: '127.0.0.1', port: redis.port, namespace: 'cache' })
    await app.register(backplane, { redis: redis.url })
  })

  const cache = (app.redis as unknown as Record<string, Redis>).cache!
  await cache.set('coexistence:key', 'value')
  assert.equal(await cache.get('coexistence:key'), 'value')
  await assertBroadcastsCross(t, app, other)

  await other.close()
  await app.close()
  await assertNoConnectionsLeft(admin)
})

test('app.redis passed in stays open', async (t) => {
  const { redis, admin } = await startServer(t)
  const other = await startInstance(t, { backplane: { redis: redis.url } })

  // Fastify runs onClose hooks in reverse order of registration, so this hook runs after the
  // backplane has closed and before @fastify/redis quits the app's client.
  let pingAfterBackplaneClosed: string | Error | undefined
  const app = await startApp(t, async (app) => {
    await app.register(fastifyRedis, { host: '127.0.0.1', port: redis.port })
    app.addHook('onClose', async () => {
      pingAfterBackplaneClosed = await app.redis.ping().catch((err: Error) => err)
    })
    await app.register(backplane, { redis: app.redis })
  })

  await assertAppRedisWorks(app)
  await assertBroadcastsCross(t, app, other)
  await other.close()
  assert.equal((await listClients(admin)).filter(isSubscriber).length, 1, 'the backplane subscriber is connected')

  await app.close()
  assert.equal(pingAfterBackplaneClosed, 'PONG')
  await assertNoConnectionsLeft(admin)
})

test('test-owned client survives close', async (t) => {
  const { redis, admin } = await startServer(t)
  const other = await startInstance(t, { backplane: { redis: redis.url } })

  const client = new Redis({ host: '127.0.0.1', port: redis.port, connectionName: 'test-owned' })
  t.after(() => { client.disconnect() })
  const app = await startApp(t, async (app) => {
    await app.register(backplane, { redis: client })
  })

  await assertBroadcastsCross(t, app, other)
  await other.close()
  // The backplane's subscriber is a duplicate of the client, so it carries the same name.
  const named = (await listClients(admin)).filter((info) => info.name === 'test-owned')
  assert.deepEqual(named.map(isSubscriber).sort(), [false, true])

  await app.close()
  assert.equal(client.status, 'ready')
  assert.equal(await client.ping(), 'PONG')
  await waitUntil('only the test-owned client is left', async () => {
    const clients = await listClients(admin)
    return clients.length === 1 && clients[0]!.name === 'test-owned' && !isSubscriber(clients[0]!)
  })
})
