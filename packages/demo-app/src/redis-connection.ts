import { once } from 'node:events'
import createError from '@fastify/error'
import { Redis, ReplyError } from 'ioredis'
import type { RedisOptions } from 'ioredis'

export const RedisUnreachableError = createError<[string, number, string]>(
  'NOTES_BOARD_REDIS_UNREACHABLE',
  'Redis at %s did not accept a connection within %d ms (last error: %s). Check that REDIS_URL names a running Redis server that this host can reach.',
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
 * password, or an unknown host, rejects at once.
 */
export async function connectRedis (options: RedisOptions, timeout: number): Promise<Redis> {
  const client = new Redis(options)
  const signal = AbortSignal.timeout(timeout)
  let lastError = 'none reported'

  // `once()` rejects on the client's 'error' events too, so each failed attempt ends one wait.
  for (;;) {
    try {
      await once(client, 'ready', { signal })
      return client
    } catch (err) {
      if (signal.aborted) {
        client.disconnect()
        const address = options.path ?? `${options.host ?? 'localhost'}:${options.port ?? 6379}`
        throw new RedisUnreachableError(address, timeout, lastError)
      }
      if (isFatal(err)) {
        client.disconnect()
        throw err
      }
      lastError = (err as Error).message
    }
  }
}

function isFatal (err: unknown): boolean {
  if (err instanceof ReplyError) return true
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && FATAL_ERROR_CODES.has(code)
}
