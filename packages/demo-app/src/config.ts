import { hostname } from 'node:os'

/** The settings that `server.ts` reads from the environment. */
export interface ServerConfig {
  port: number
  host: string
  redisUrl: string | undefined
  redisRejectUnauthorized: boolean
  instanceId: string
  /** Signs negotiated connection tokens; the same on every instance. */
  negotiateSecret: string | undefined
  logLevel: string
  /** Whether the app runs on Heroku, where a router in front of it sets X-Forwarded-* headers. */
  behindProxy: boolean
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

/**
 * Reads the server's settings from environment variables, with defaults that suit Heroku.
 * Throws an Error that names the variable when a value is invalid.
 *
 * - PORT: TCP port, default 3000. Heroku sets it.
 * - HOST: listen address, default 0.0.0.0, because Heroku's router connects from outside the dyno.
 * - REDIS_URL, or REDIS_TLS_URL when REDIS_URL is unset or empty: the Redis to use.
 * - REDIS_TLS_REJECT_UNAUTHORIZED: `1` or `true` to verify a rediss:// server's certificate.
 * - DYNO: the instance name that users see, such as `web.1`; default `{hostname}:{port}`.
 * - BACKPLANE_SECRET: the secret that signs negotiated connection tokens, so that any instance
 *   accepts a token another issued. The page skips negotiation, so only other clients need it.
 * - LOG_LEVEL: pino level, default `info`.
 */
export function readServerConfig (env: NodeJS.ProcessEnv, host = hostname()): ServerConfig {
  const port = parsePort(env.PORT)
  const redisUrl = nonEmpty(env.REDIS_URL) ?? nonEmpty(env.REDIS_TLS_URL)
  const logLevel = nonEmpty(env.LOG_LEVEL) ?? 'info'
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new Error(`Invalid LOG_LEVEL "${logLevel}": expected one of ${LOG_LEVELS.join(', ')}.`)
  }

  return {
    port,
    host: nonEmpty(env.HOST) ?? '0.0.0.0',
    redisUrl,
    // Heroku Key-Value Store (Heroku Redis) serves TLS with a self-signed certificate, which
    // verification rejects, so verification is off unless REDIS_TLS_REJECT_UNAUTHORIZED is 1 or
    // true. The trade-off: traffic is still encrypted, but the dyno cannot distinguish the real
    // server from an impostor that intercepts the connection. Turn verification on for a Redis whose
    // certificate a public CA signed. It matters only for rediss:// URLs.
    redisRejectUnauthorized: parseBoolean('REDIS_TLS_REJECT_UNAUTHORIZED', env.REDIS_TLS_REJECT_UNAUTHORIZED, false),
    instanceId: nonEmpty(env.DYNO) ?? `${host}:${port}`,
    negotiateSecret: nonEmpty(env.BACKPLANE_SECRET),
    logLevel,
    behindProxy: nonEmpty(env.DYNO) !== undefined
  }
}

function parsePort (value: string | undefined): number {
  if (nonEmpty(value) === undefined) return 3000
  const port = Number(value)
  if (!/^\d+$/.test(value!) || port > 65535) {
    throw new Error(`Invalid PORT "${value}": expected an integer from 0 to 65535.`)
  }
  return port
}

function parseBoolean (name: string, value: string | undefined, fallback: boolean): boolean {
  const normalized = nonEmpty(value)?.toLowerCase()
  if (normalized === undefined) return fallback
  if (normalized === '1' || normalized === 'true') return true
  if (normalized === '0' || normalized === 'false') return false
  throw new Error(`Invalid ${name} "${value}": expected 1, true, 0 or false.`)
}

function nonEmpty (value: string | undefined): string | undefined {
  const trimmed = value?.trim()
  return trimmed === '' ? undefined : trimmed
}
