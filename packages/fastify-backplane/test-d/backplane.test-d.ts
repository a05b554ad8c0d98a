import { Cluster, Redis } from 'ioredis'
import Fastify from 'fastify'
import { expectAssignable, expectError, expectNotAssignable, expectType } from 'tsd'
import fastifyBackplane, { backplane, connectRedis, InProcessBus } from 'fastify-backplane'
import type { Backplane, BackplaneHealth, BackplaneOptions, BroadcastFunction, ConnectRedisOptions, HubContext, Presence } from 'fastify-backplane'

const app = Fastify()

// The default export and the named export are the same plugin.
expectType<typeof backplane>(fastifyBackplane)

// Accepted options.
await app.register(backplane)
await app.register(backplane, {})
await app.register(backplane, { redis: process.env.REDIS_URL })
await app.register(backplane, { redis: '' })
await app.register(backplane, { redis: { host: '127.0.0.1', port: 6379, password: 'secret' } })
await app.register(backplane, { redis: new Redis({ lazyConnect: true }) })
await app.register(backplane, { redisCluster: { nodes: ['redis://127.0.0.1:7000'] } })
await app.register(backplane, { redisCluster: { nodes: ['redis://127.0.0.1:7000'], options: { scaleReads: 'master' } } })
await app.register(backplane, { redisCluster: new Cluster([{ host: '127.0.0.1', port: 7000 }], { shardedSubscribers: true, lazyConnect: true }) })
await app.register(backplane, { redis: '', redisCluster: { nodes: ['redis://127.0.0.1:7000'] } })
await app.register(backplane, {
  redis: 'rediss://:secret@redis.example:6380',
  redisRejectUnauthorized: false,
  channelPrefix: 'notes:',
  instanceId: 'web.1',
  inProcessBus: new InProcessBus(),
  groupCommandTimeout: 30_000,
  presenceTimeout: 2000,
  clientResultTimeout: 30_000,
  closeTimeout: 5000
})

// Rejected options: redis and redisCluster exclude each other.
expectError(await app.register(backplane, { redis: 'redis://127.0.0.1:6379', redisCluster: { nodes: ['redis://127.0.0.1:7000'] } }))
expectNotAssignable<BackplaneOptions>({ redis: 'redis://127.0.0.1:6379', redisCluster: { nodes: ['redis://127.0.0.1:7000'] } })
expectAssignable<BackplaneOptions>({ redisCluster: { nodes: ['redis://127.0.0.1:7000'] } })

// Rejected options: wrong value types and misspelled names.
expectError(await app.register(backplane, { redis: 6379 }))
expectError(await app.register(backplane, { redisCluster: { nodes: 'redis://127.0.0.1:7000' } }))
expectError(await app.register(backplane, { redisCluster: ['redis://127.0.0.1:7000'] }))
expectError(await app.register(backplane, { channelPrefix: 1 }))
expectError(await app.register(backplane, { redisRejectUnauthorized: 'no' }))
expectError(await app.register(backplane, { instanceId: 1 }))
expectError(await app.register(backplane, { presenceTimeout: '2s' }))
expectError(await app.register(backplane, { closeTimeout: null }))
expectError(await app.register(backplane, { inProcessBus: {} }))
expectError(await app.register(backplane, { channelprefix: 'notes:' }))

// The decorators reach every FastifyInstance through the plugin's `declare module 'fastify'`.
expectType<BroadcastFunction>(app.broadcast)
expectType<Backplane>(app.backplane)
expectType<Promise<void>>(app.broadcast('ReceiveMessage'))
expectType<Promise<void>>(app.broadcast('ReceiveMessage', ['server', 'hello']))
expectType<Promise<void>>(app.broadcast('ReceiveMessage', ['hello'], { hub: 'chat', group: 'lobby', except: 'connection-1' }))
expectType<Promise<void>>(app.broadcast('ReceiveMessage', [], { connection: ['connection-1', 'connection-2'] }))
expectType<Promise<void>>(app.broadcast('ReceiveMessage', [], { user: 'user-1' }))
expectError(app.broadcast())
expectError(app.broadcast(42))
expectError(app.broadcast('ReceiveMessage', 'hello'))
expectError(app.broadcast('ReceiveMessage', [], { group: 1 }))
expectError(app.broadcast('ReceiveMessage', [], { room: 'lobby' }))

app.get('/announce', async function () {
  expectType<BroadcastFunction>(this.broadcast)
  await this.broadcast('ReceiveMessage', ['server', 'hello'], { group: 'lobby' })
  return { ok: true }
})

// The backplane's own members.
expectType<string>(app.backplane.instanceId)
expectType<string>(app.backplane.transport)
expectType<boolean>(app.backplane.connected)
expectType<BackplaneHealth>(app.backplane.health())
expectType<HubContext>(app.backplane.hubContext())
expectType<HubContext>(app.backplane.hubContext('chat'))
expectType<Promise<Presence>>(app.backplane.hubContext().count({ group: 'lobby' }))
expectType<Promise<void>>(app.backplane.hubContext().groups.add('connection-1', 'lobby'))
expectError(app.backplane.hubContext(1))

// connectRedis() takes a URL or ioredis options and the app's logger, and resolves with a client
// that the backplane can share.
const shared = await connectRedis('redis://127.0.0.1:6379', { log: app.log })
expectType<Redis>(shared)
await app.register(backplane, { redis: shared })
expectType<Promise<Redis>>(connectRedis({ host: '127.0.0.1', port: 6379 }, { log: app.log, connectTimeout: 5000, rejectUnauthorized: false }))
expectAssignable<ConnectRedisOptions>({ log: app.log, connectTimeout: undefined, rejectUnauthorized: undefined })
expectError(connectRedis('redis://127.0.0.1:6379'))
expectError(connectRedis('redis://127.0.0.1:6379', {}))
expectError(connectRedis('redis://127.0.0.1:6379', { log: app.log, connectTimeout: '5000' }))
expectError(connectRedis(new Redis({ lazyConnect: true }), { log: app.log }))
