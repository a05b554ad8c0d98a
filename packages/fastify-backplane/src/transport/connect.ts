import fastifyRedis from '@fastify/redis'
import type { FastifyInstance } from 'fastify'
import { Cluster, Redis } from 'ioredis'
import type { ClusterOptions, RedisOptions } from 'ioredis'
import { InvalidOptionError } from '../errors.js'
import type { ResolvedBackplaneOptions } from '../backplane/options.js'
import { ThrottledWarnings } from '../backplane/throttled-log.js'
import { InProcessTransport } from './in-process.js'
import { describeError, RedisTransport } from './redis.js'
import { RedisClusterTransport } from './redis-cluster.js'
import { isRedisClient, reconnectDelay, toRedisOptions, waitUntilReady } from './redis-client.js'
import { parseRedisUrl } from './redis-url.js'
import type { Transport } from './transport.js'

/**
 * Creates the transport that the options ask for: in-process without Redis, otherwise Redis
 * pub/sub over a publisher connection and a dedicated subscriber made with `duplicate()`.
 */
export async function connectTransport (fastify: FastifyInstance, options: ResolvedBackplaneOptions): Promise<Transport> {
  if (options.redisCluster !== undefined) return connectCluster(fastify, options)
  if (options.redis === undefined) {
    fastify.log.info({ transport: 'in-process', instanceId: options.instanceId }, 'backplane delivers in-process only; pass the redis option to reach other instances')
    return new InProcessTransport(options.inProcessBus)
  }

  const owned: Redis[] = []
  const publisher = isRedisClient(options.redis)
    ? options.redis
    : await openPublisher(fastify, toRedisOptions(options.redis, options.redisRejectUnauthorized), owned, options.connectTimeout)
  const subscriber = publisher.duplicate({ retryStrategy: reconnectDelay })
  owned.push(subscriber)

  // Only the plugin's own connections: errors of a client the app passed in are the app's to log.
  reportConnectionErrors(fastify, subscriber, 'subscriber')
  fastify.log.info({ transport: 'redis', instanceId: options.instanceId, ...describeConnection(publisher.options) }, 'backplane uses Redis pub/sub')
  return new RedisTransport({ publisher, subscriber, owned, closeTimeout: options.closeTimeout, log: fastify.log })
}

/**
 * Opens a Cluster client with sharded subscribers, or duplicates the app's, for the
 * subscriptions. ioredis needs `shardedSubscribers: true`, or SSUBSCRIBE silently receives
 * nothing, so an app's client without it is rejected.
 */
async function connectCluster (fastify: FastifyInstance, options: ResolvedBackplaneOptions): Promise<Transport> {
  const option = options.redisCluster!
  const owned: Cluster[] = []
  let publisher: Cluster
  if (option instanceof Cluster) {
    if (option.options.shardedSubscribers !== true) {
      throw new InvalidOptionError('redisCluster', 'the Cluster client was created without shardedSubscribers: true, so sharded subscriptions would receive nothing', 'Create it with new Cluster(nodes, { shardedSubscribers: true }).')
    }
    publisher = option
  } else {
    const { nodes, options: clusterOptions = {} } = option as { nodes: string[], options?: ClusterOptions }
    const parsed = nodes.map((url) => parseRedisUrl(url, { rejectUnauthorized: options.redisRejectUnauthorized }))
    if (parsed.some(({ db }) => db !== 0)) {
      throw new InvalidOptionError('redisCluster', 'a node URL selects a database, but Redis Cluster has only database 0', 'Remove the /db path from the node URLs.')
    }
    const { host: _host, port: _port, db: _db, ...connection } = parsed[0]!
    // A pipeline of Redis Cluster commands must stay within one slot, so the standalone
    // transport's own batching cannot work here. ioredis's auto-pipelining groups by node.
    publisher = new Cluster(parsed.map(({ host, port }) => ({ host, port })), {
      enableAutoPipelining: true,
      ...clusterOptions,
      shardedSubscribers: true,
      redisOptions: { ...connection, ...clusterOptions.redisOptions }
    })
    owned.push(publisher)
  }
  const subscriber = publisher.duplicate()
  owned.push(subscriber)

  for (const client of owned) reportConnectionErrors(fastify, client, client === subscriber ? 'cluster subscriber' : 'cluster publisher')
  fastify.log.info({ transport: 'redis-cluster', instanceId: options.instanceId }, 'backplane uses Redis Cluster sharded pub/sub')
  return new RedisClusterTransport({ publisher, subscriber, owned, closeTimeout: options.closeTimeout })
}

/**
 * Opens the publisher, waits until it is ready, and hands it to `@fastify/redis`, registered in
 * an encapsulated context so its `redis` decorator never reaches the app: an app that registers
 * `@fastify/redis` itself, before or after this plugin, keeps its own decorator. When the app's
 * decorator already exists, `@fastify/redis` cannot be registered again, and the ready client is
 * used as it is. The transport quits the client on close, which stays safe when the connection
 * has already ended.
 */
async function openPublisher (fastify: FastifyInstance, redisOptions: RedisOptions, owned: Redis[], connectTimeout: number): Promise<Redis> {
  const client = new Redis({ retryStrategy: reconnectDelay, ...redisOptions })
  owned.push(client)
  // Reported from the start, so that a server that refuses connections shows in the log while
  // ready() waits.
  reportConnectionErrors(fastify, client, 'publisher')
  await waitUntilReady(client, connectTimeout)
  if (fastify.hasDecorator('redis')) return client

  await fastify.register(async function backplaneRedis (child) {
    await child.register(fastifyRedis, { client, closeClient: false })
  })
  return client
}

function reportConnectionErrors (fastify: FastifyInstance, client: Redis | Cluster, role: string): void {
  const warnings = new ThrottledWarnings(fastify.log)
  client.on('error', (err: Error & { code?: string }) => {
    // Only these fields: ioredis attaches the failed command's arguments to reply errors,
    // and those of AUTH contain the password.
    // Under `error`, not `err`, which pino's error serializer would turn into type "Object".
    const fields = { error: describeError(err), role }
    warnings.warn(`redis-${role}:${err.code ?? err.name}`, fields, 'backplane Redis connection error')
  })
}

/** Fields that identify a Redis server in logs; never the password. */
function describeConnection (options: RedisOptions): Record<string, unknown> {
  return { host: options.host, port: options.port, db: options.db ?? 0, tls: options.tls !== undefined }
}
