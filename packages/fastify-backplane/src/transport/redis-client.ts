import type { FastifyBaseLogger } from 'fastify'
import { Redis, ReplyError } from 'ioredis'
import type { RedisOptions } from 'ioredis'
import { describeValue } from '../describe-value.js'
import { InvalidOptionError, RedisRejectedError, RedisUnreachableError } from '../errors.js'
import { describeError } from './redis.js'
import { parseRedisUrl } from './redis-url.js'

// Opens single Redis connections: the backplane's publisher, and the clients that apps open with
// connectRedis() to share with the backplane.

/** Options of `connectRedis()`. */
export interface ConnectRedisOptions {
  /**
   * Receives the client's connection events: the first failed attempt while `connectRedis()`
   * waits, then one warning when the connection fails and one line when it is restored. Pass
   * the app's logger, `app.log`.
   */
  log: FastifyBaseLogger
  /**
   * How long to wait for the server before rejecting with `FST_BACKPLANE_REDIS_UNREACHABLE`, in
   * ms. A wrong password or a certificate that fails verification rejects at once with
   * `FST_BACKPLANE_REDIS_REJECTED`.
   * @default 8000
   */
  connectTimeout?: number | undefined
  /**
   * Whether to verify the certificate of a `rediss://` server. `false` for servers with
   * self-signed certificates, such as Heroku Key-Value Store's.
   * @default true
   */
  rejectUnauthorized?: boolean | undefined
}

/**
 * Opens an ioredis client the way the backplane opens its own, for an app that uses Redis itself
 * and shares the client with the backplane through `redis: client`. Resolves once the client is
 * ready for commands. It reconnects after an outage, with the same backoff as the backplane's
 * connections, and logs each outage once instead of letting ioredis print every failed attempt
 * to stderr. Neither its errors nor its log lines contain the password. The app quits the
 * client when it is done, for example through `@fastify/redis` with `closeClient: true`.
 */
export async function connectRedis (redis: string | RedisOptions, options: ConnectRedisOptions): Promise<Redis> {
  const { log, connectTimeout = 8000, rejectUnauthorized = true } = options ?? {}
  if (typeof redis !== 'string' && (typeof redis !== 'object' || redis === null || isRedisClient(redis))) {
    throw new InvalidOptionError('redis', `expected a URL string or ioredis options, got ${isRedisClient(redis) ? 'an ioredis client' : describeValue(redis)}`, 'Pass a redis:// or rediss:// URL or ioredis options, and call connectRedis() only when Redis is configured. A client that is already open needs no connectRedis().')
  }
  if (typeof log?.warn !== 'function' || typeof log.info !== 'function') {
    throw new InvalidOptionError('log', `expected a pino logger, got ${describeValue(log)}`, 'Pass the app\'s logger, app.log.')
  }
  if (typeof connectTimeout !== 'number' || !Number.isFinite(connectTimeout) || connectTimeout < 0) {
    throw new InvalidOptionError('connectTimeout', `expected a non-negative number of milliseconds, got ${describeValue(connectTimeout)}`, 'Leave it out for 8000.')
  }
  if (typeof rejectUnauthorized !== 'boolean') {
    throw new InvalidOptionError('rejectUnauthorized', `expected a boolean, got ${describeValue(rejectUnauthorized)}`, 'Use false only for servers with self-signed certificates.')
  }

  const client = new Redis({ retryStrategy: reconnectDelay, ...toRedisOptions(redis, rejectUnauthorized) })
  reportOutages(client, log)
  await waitUntilReady(client, connectTimeout)
  return client
}

/**
 * Logs the first failed attempt of a new client, then one warning when its connection fails
 * and one line when it is ready again. The listener also keeps ioredis from printing each
 * failed attempt as an unhandled error event.
 */
function reportOutages (client: Redis, log: FastifyBaseLogger): void {
  const redis = addressOf(client.options)
  let ready = false
  let down = false
  client.on('error', (err: Error) => {
    // Before the first ready, `waitUntilReady()` turns an error that no retry fixes into its rejection.
    if (down || (!ready && isPermanent(err))) return
    down = true
    if (ready) log.warn({ redis, error: describeError(err) }, 'Redis connection failed; reconnecting')
    else log.warn({ redis, error: describeError(err) }, 'Redis not ready yet; retrying')
  })
  client.on('ready', () => {
    if (ready && down) log.info({ redis }, 'Redis connection restored')
    ready = true
    down = false
  })
}

/**
 * Waits until a new client has connected and is ready for commands. After `timeout` ms it
 * disconnects the client, which would otherwise keep retrying, and fails with the last error.
 * An error that no retry can fix, such as a wrong password or a certificate that fails
 * verification, fails at once.
 */
export async function waitUntilReady (client: Redis, timeout: number): Promise<void> {
  if (client.status === 'ready') return
  // A client made with lazyConnect waits for its first command. Its errors reach the listeners.
  if (client.status === 'wait') client.connect().catch(() => {})
  const address = addressOf(client.options)
  let lastError = 'none reported'
  await new Promise<void>((resolve, reject) => {
    const fail = (err: Error): void => {
      cleanUp()
      client.disconnect()
      reject(err)
    }
    const onError = (err: Error): void => {
      // Reply errors of the connection's first commands (AUTH, HELLO, SELECT) carry the
      // command's arguments, so only their message goes into the new error.
      // The error messages end a sentence of their own, so their final period goes.
      const message = err.message.replace(/\.$/, '')
      if (isPermanent(err)) fail(new RedisRejectedError(address, message))
      else lastError = message
    }
    const onReady = (): void => {
      cleanUp()
      resolve()
    }
    const timer = setTimeout(() => fail(new RedisUnreachableError(address, timeout, lastError)), timeout)
    const cleanUp = (): void => {
      clearTimeout(timer)
      client.off('ready', onReady)
      client.off('error', onError)
    }
    client.on('ready', onReady)
    client.on('error', onError)
  })
}

/** Codes of TLS errors after which only other TLS settings let a connection succeed. */
const CERTIFICATE_ERROR_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID'
])

/** Returns whether retrying cannot fix a connection error: a reply error, such as a wrong password, or a certificate error. */
function isPermanent (err: Error & { code?: string }): boolean {
  return err instanceof ReplyError || (err.code !== undefined && CERTIFICATE_ERROR_CODES.has(err.code))
}

/** Returns the host and port, or the socket path, that identify a Redis server in errors and logs. */
function addressOf (options: RedisOptions): string {
  return options.path ?? `${options.host ?? 'localhost'}:${options.port ?? 6379}`
}

export function toRedisOptions (redis: string | RedisOptions, rejectUnauthorized: boolean): RedisOptions {
  if (typeof redis === 'string') return parseRedisUrl(redis, { rejectUnauthorized })
  if (redis.tls !== undefined && !rejectUnauthorized) return { ...redis, tls: { ...(redis.tls as object), rejectUnauthorized } }
  return redis
}

/**
 * Returns the delay before reconnect attempt `attempt`: exponential from 100 ms up to 2 s, with
 * jitter, so that the instances of an app do not reconnect in lockstep after a Redis restart.
 * It never gives up, so subscriptions come back however long the outage lasts.
 */
export function reconnectDelay (attempt: number): number {
  const ceiling = Math.min(2000, 100 * 2 ** Math.min(attempt, 5))
  return Math.round(ceiling / 2 + Math.random() * ceiling / 2)
}

export function isRedisClient (value: unknown): value is Redis {
  return value instanceof Redis || (typeof value === 'object' && value !== null &&
    typeof (value as Redis).duplicate === 'function' && typeof (value as Redis).publish === 'function')
}
