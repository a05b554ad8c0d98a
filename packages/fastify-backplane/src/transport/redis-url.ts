import type { RedisOptions } from 'ioredis'
import { InvalidRedisUrlError } from '../errors.js'

/** ioredis options parsed from a Redis URL, with host, port and database always set. */
export interface RedisConnectionOptions extends RedisOptions {
  host: string
  port: number
  db: number
}

/**
 * Parses a `redis://` or `rediss://` URL, as Heroku and most hosts hand them out, into
 * ioredis options. User and password are percent-decoded, an empty user is allowed
 * (`rediss://:password@host`), IPv6 hosts come in brackets, and the path selects the database.
 * `rejectUnauthorized: false` accepts self-signed certificates on this connection only.
 * Throws FST_BACKPLANE_INVALID_REDIS_URL, whose message never contains the password.
 */
export function parseRedisUrl (url: string, { rejectUnauthorized = true } = {}): RedisConnectionOptions {
  const fail = (problem: string): never => {
    throw new InvalidRedisUrlError(redactRedisUrl(url), problem)
  }

  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase()
  if (scheme === undefined) fail('missing scheme')
  if (scheme !== 'redis' && scheme !== 'rediss') fail(`unsupported scheme "${scheme}:"`)
  if (!url.slice(scheme!.length + 1).startsWith('//')) fail('missing "//" after the scheme')

  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return fail(describeUnparsableUrl(url))
  }

  // A query string or fragment is rejected rather than ignored: it most often means a password
  // with an unencoded "?" or "#", which would otherwise be silently misread as host and port.
  if (parsed.search !== '' || parsed.hash !== '') fail('query strings and fragments are not supported; percent-encode "?" and "#" in the password')

  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1')
  if (host === '') fail('missing host')

  const port = parsed.port === '' ? 6379 : Number(parsed.port)
  if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`port ${parsed.port} is out of range 1-65535`)

  const options: RedisConnectionOptions = { host, port, db: parseDatabase(parsed.pathname, fail) }
  const username = decodeUserInfo(parsed.username, 'user', fail)
  const password = decodeUserInfo(parsed.password, 'password', fail)
  if (username !== '') options.username = username
  if (password !== '') options.password = password

  if (scheme === 'rediss') {
    options.tls = isIpAddress(host) ? { rejectUnauthorized } : { servername: host, rejectUnauthorized }
  }
  return options
}

/**
 * Replaces the password (or a lone user-info secret) in a Redis URL with `***`, for messages
 * and logs. Everything up to the last `@` counts as user info, so a password with unencoded
 * `/`, `?` or `@` is still hidden.
 */
export function redactRedisUrl (url: string): string {
  const schemeEnd = url.indexOf('://')
  const authorityStart = schemeEnd === -1 ? 0 : schemeEnd + 3
  const at = url.lastIndexOf('@')
  if (at < authorityStart) return url

  const userInfo = url.slice(authorityStart, at)
  const colon = userInfo.indexOf(':')
  const redacted = colon === -1 ? '***' : `${userInfo.slice(0, colon)}:***`
  return url.slice(0, authorityStart) + redacted + url.slice(at)
}

function parseDatabase (pathname: string, fail: (problem: string) => never): number {
  const path = pathname.replace(/^\//, '')
  if (path === '') return 0
  // The path is not echoed, because with an unencoded "/" in the password it contains part of the password.
  if (!/^\d+$/.test(path)) fail('the database path is not a non-negative integer')
  return Number(path)
}

function decodeUserInfo (raw: string, part: 'user' | 'password', fail: (problem: string) => never): string {
  try {
    return decodeURIComponent(raw)
  } catch {
    return fail(`the ${part} contains an invalid percent-encoding`)
  }
}

function describeUnparsableUrl (url: string): string {
  const hostAndPort = redactRedisUrl(url).replace(/^[^/]*\/\/(?:[^@]*@)?/, '')
  const portMatch = /^(?:\[[^\]]*\]|[^:/?#]*):([^/?#]*)/.exec(hostAndPort)
  if (portMatch !== null && !/^\d*$/.test(portMatch[1]!)) return `port "${portMatch[1]}" is not a number`
  if (portMatch !== null && Number(portMatch[1]) > 65535) return `port ${portMatch[1]} is out of range 1-65535`
  return 'the URL cannot be parsed'
}

function isIpAddress (host: string): boolean {
  return host.includes(':') || /^\d{1,3}(\.\d{1,3}){3}$/.test(host)
}
