import { once } from 'node:events'
import createError from '@fastify/error'
import { Redis, ReplyError } from 'ioredis'
import type { RedisOptions } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'

export const RedisUnreachableError = createError<[string, number, string]>(
  'NOTES_BOARD_REDIS_UNREACHABLE',
  'Redis at %s did not accept a connection within %d ms (last error: %s). Check that REDIS_URL names a running Redis server that this host can reach.',
  500
)

export const RedisConnectionFailedError = createError<[string, string]>(
  'NOTES_BOARD_REDIS_CONNECTION_FAILED',
  'Connecting to Redis at %s failed: %s. Check the host, user and password in REDIS_URL, and REDIS_TLS_REJECT_UNAUTHORIZED for a rediss:// URL.',
  500
)

/**
 * Error codes after which retrying cannot help: the host name does not resolve, or the server's
 * certificate fails verification, which only other TLS settings change.
 */
const FATAL_ERROR_CODES = new Set([
  'ENOTFOUND',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID'
])

/**
 * Opens a Redis client and resolves with it once it is ready. Refused connections are retried for
 * `timeout` ms before it rejects with RedisUnreachableError. A reply error such as a wrong
 * password, or an unknown host, rejects at once with RedisConnectionFailedError. Once ready, the
 * client's connection errors go to `log`.
 */
export async function connectRedis (options: RedisOptions, timeout: number, log: FastifyBaseLogger): Promise<Redis> {
  const client = new Redis(options)
  const address = options.path ?? `${options.host ?? 'localhost'}:${options.port ?? 6379}`
  const signal = AbortSignal.timeout(timeout)
  let lastError: string | undefined

  // `once()` rejects on the client's 'error' events too, so each failed attempt ends one wait.
  for (;;) {
    try {
      await once(client, 'ready', { signal })
      break
    } catch (err) {
      if (signal.aborted) {
        client.disconnect()
        throw new RedisUnreachableError(address, timeout, lastError ?? 'none reported')
      }
      if (isFatal(err)) {
        client.disconnect()
        // Only the message: ioredis attaches the failed command's arguments, AUTH's included.
        throw new RedisConnectionFailedError(address, (err as Error).message)
      }
      // The first failure only, so that a slow start shows why it waits.
      if (lastError === undefined) log.warn({ redis: address, error: describe(err), timeoutMs: timeout }, 'Redis not ready yet; retrying')
      lastError = (err as Error).message
    }
  }

  reportOutages(client, address, log)
  return client
}

/** Returns the fields of a connection error that are safe to log, without the command's arguments. */
function describe (err: unknown): Record<string, unknown> {
  const { name, code, message } = err as Error & { code?: string }
  return { type: name, code, message }
}

function isFatal (err: unknown): boolean {
  if (err instanceof ReplyError) return true
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && FATAL_ERROR_CODES.has(code)
}

/**
 * Logs one warning when the client's connection fails and one line when it is ready again, in
 * place of ioredis's unhandled error events on stderr at every reconnect attempt.
 */
function reportOutages (client: Redis, address: string, log: FastifyBaseLogger): void {
  let down = false
  client.on('error', (err: Error) => {
    if (down) return
    down = true
    log.warn({ redis: address, error: describe(err) }, 'Redis connection failed; reconnecting')
  })
  client.on('ready', () => {
    if (!down) return
    down = false
    log.info({ redis: address }, 'Redis connection restored')
  })
}
