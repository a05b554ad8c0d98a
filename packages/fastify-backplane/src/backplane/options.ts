import { randomUUID } from 'node:crypto'
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis'
import { InvalidOptionError } from '../errors.js'
import { describeValue } from '../describe-value.js'
import { rejectUnknownOptions } from '../unknown-options.js'
import type { InProcessBus } from '../transport/in-process.js'

/**
 * Every option of the backplane plugin, with `redis` and `redisCluster` side by side.
 * `BackplaneOptions` is what the plugin accepts: the same options, with those two exclusive.
 */
export interface BackplaneBaseOptions {
  /**
   * The Redis that connects the instances: a `redis://` or `rediss://` URL (pass `process.env.REDIS_URL`),
   * ioredis options, or an ioredis client that the app already has, such as the one that
   * `@fastify/redis` decorates. Without it, or with an empty string, delivery stays inside
   * this process. The plugin never reads environment variables itself.
   * @default undefined (in-process delivery)
   */
  redis?: string | RedisOptions | Redis | undefined
  /**
   * A Redis Cluster, in place of `redis`: its nodes as `redis://` or `rediss://` URLs (user,
   * password and TLS apply to every node) with optional ioredis cluster options, or an ioredis
   * Cluster client created with `shardedSubscribers: true`. The backplane then uses Redis 7
   * sharded pub/sub (SPUBLISH and SSUBSCRIBE), so throughput grows with the number of shards.
   * @default undefined
   */
  redisCluster?: RedisClusterOption | undefined
  /**
   * Prefix of every channel name. Redis pub/sub ignores the database number, so apps that
   * share one Redis must use different prefixes.
   * @default 'fastify-backplane:'
   */
  channelPrefix?: string | undefined
  /**
   * Whether to verify the Redis server's TLS certificate. Set it to `false` for Heroku
   * Key-Value Store, whose certificates are self-signed; it affects this plugin's Redis
   * connections only, never the rest of the process.
   * @default true
   */
  redisRejectUnauthorized?: boolean | undefined
  /**
   * Identifies this instance in envelopes and logs. Two live instances must never share one.
   * @default a random UUID
   */
  instanceId?: string | undefined
  /**
   * The bus that in-process delivery uses. Pass one bus to several Fastify instances in one
   * process to let them reach each other without Redis.
   * @default a new bus for this instance
   */
  inProcessBus?: InProcessBus | undefined
  /**
   * How long adding or removing a connection of another instance to or from a group waits for
   * that instance to acknowledge, in milliseconds.
   * @default 30000
   */
  groupCommandTimeout?: number | undefined
  /**
   * How long a presence count waits for the other instances to report, in milliseconds.
   * @default 2000
   */
  presenceTimeout?: number | undefined
  /**
   * How long `clients.client(id).invoke()` waits for a result from a connection on another
   * instance, in milliseconds.
   * @default 30000
   */
  clientResultTimeout?: number | undefined
  /**
   * How often the instance sends a probe to itself through the transport, in milliseconds. A
   * probe unanswered by the next check marks the connections unresponsive and reopens them,
   * which detects half-open TCP connections and frozen servers.
   * @default 5000
   */
  healthCheckInterval?: number | undefined
  /**
   * How long closing waits for Redis to acknowledge QUIT before dropping the connections, in
   * milliseconds.
   * @default 5000
   */
  closeTimeout?: number | undefined
  /**
   * How long `ready()` waits for the connection to the Redis server that `redis` names, in
   * milliseconds, before it fails with `FST_BACKPLANE_REDIS_UNREACHABLE`. The default is below
   * Fastify's default `pluginTimeout` (10 s), so that this error, which names the server and the
   * last connection error, comes first. A wrong password or a certificate that fails
   * verification fails at once with `FST_BACKPLANE_REDIS_REJECTED`. A client the app passes in
   * is not waited for.
   * @default 8000
   */
  connectTimeout?: number | undefined
}

/** Cluster nodes and options, or a Cluster client that the app already has. */
export type RedisClusterOption = { nodes: string[], options?: ClusterOptions } | Cluster

/**
 * Options of the backplane plugin. `redis` and `redisCluster` exclude each other: with
 * `redisCluster`, `redis` may only be left out or be the empty string, as `ready()` checks too.
 */
export type BackplaneOptions = BackplaneBaseOptions & (
  | { redisCluster?: undefined }
  | { redis?: '' | undefined, redisCluster: RedisClusterOption }
)

/** The options after validation, with every default applied. */
export interface ResolvedBackplaneOptions {
  redis: string | RedisOptions | Redis | undefined
  redisCluster: RedisClusterOption | undefined
  channelPrefix: string
  redisRejectUnauthorized: boolean
  instanceId: string
  inProcessBus: InProcessBus | undefined
  groupCommandTimeout: number
  presenceTimeout: number
  clientResultTimeout: number
  healthCheckInterval: number
  closeTimeout: number
  connectTimeout: number
}

/** Every option name, for `rejectUnknownOptions()`. The type keeps it in step with the options. */
const OPTION_NAMES: Record<keyof BackplaneBaseOptions, true> = {
  redis: true,
  redisCluster: true,
  channelPrefix: true,
  redisRejectUnauthorized: true,
  instanceId: true,
  inProcessBus: true,
  groupCommandTimeout: true,
  presenceTimeout: true,
  clientResultTimeout: true,
  healthCheckInterval: true,
  closeTimeout: true,
  connectTimeout: true
}

export function resolveBackplaneOptions (options: BackplaneOptions): ResolvedBackplaneOptions {
  rejectUnknownOptions(options, OPTION_NAMES)
  const {
    redis,
    redisCluster,
    channelPrefix = 'fastify-backplane:',
    redisRejectUnauthorized = true,
    instanceId = randomUUID(),
    inProcessBus,
    groupCommandTimeout = 30_000,
    presenceTimeout = 2000,
    clientResultTimeout = 30_000,
    healthCheckInterval = 5000,
    closeTimeout = 5000,
    connectTimeout = 8000
  } = options

  if (redis !== undefined && typeof redis !== 'string' && (typeof redis !== 'object' || redis === null)) {
    throw new InvalidOptionError('redis', `expected a URL string, ioredis options or an ioredis client, got ${typeof redis}`, 'Pass process.env.REDIS_URL or leave it out for in-process delivery.')
  }
  if (redisCluster !== undefined) {
    if (redis !== undefined && redis !== '') {
      throw new InvalidOptionError('redisCluster', 'cannot be combined with the redis option', 'Pass either redis for a single Redis server or redisCluster for a Redis Cluster.')
    }
    const isClient = typeof (redisCluster as Cluster).nodes === 'function'
    const nodes = (redisCluster as { nodes?: unknown }).nodes
    if (!isClient && (!Array.isArray(nodes) || nodes.length === 0 || !nodes.every((node) => typeof node === 'string'))) {
      throw new InvalidOptionError('redisCluster', 'expected { nodes: [url, ...] } with at least one redis:// URL, or an ioredis Cluster client', "Pass { nodes: ['redis://host:7000', 'redis://host:7001'] }.")
    }
  }
  if (typeof channelPrefix !== 'string') {
    throw new InvalidOptionError('channelPrefix', `expected a string, got ${typeof channelPrefix}`, "Use a short app name ending in a colon, such as 'notes:'.")
  }
  if (typeof redisRejectUnauthorized !== 'boolean') {
    throw new InvalidOptionError('redisRejectUnauthorized', `expected a boolean, got ${typeof redisRejectUnauthorized}`, 'Use false only for servers with self-signed certificates.')
  }
  if (typeof instanceId !== 'string' || instanceId === '') {
    throw new InvalidOptionError('instanceId', `expected a non-empty string, got ${JSON.stringify(instanceId)}`, 'Leave it out to get a random id.')
  }
  for (const [name, value, fallback] of [['groupCommandTimeout', groupCommandTimeout, 30_000], ['presenceTimeout', presenceTimeout, 2000], ['clientResultTimeout', clientResultTimeout, 30_000], ['healthCheckInterval', healthCheckInterval, 5000], ['closeTimeout', closeTimeout, 5000], ['connectTimeout', connectTimeout, 8000]] as const) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new InvalidOptionError(name, `expected a non-negative number of milliseconds, got ${describeValue(value)}`, `Leave it out for ${fallback}.`)
    }
  }

  return {
    redis: redis === '' ? undefined : redis,
    redisCluster,
    channelPrefix,
    redisRejectUnauthorized,
    instanceId,
    inProcessBus,
    groupCommandTimeout,
    presenceTimeout,
    clientResultTimeout,
    healthCheckInterval: Math.max(10, healthCheckInterval),
    closeTimeout,
    connectTimeout
  }
}
