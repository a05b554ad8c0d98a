import type { FastifyRequest } from 'fastify'
import { InvalidOptionError } from '../errors.js'

/**
 * Decides whether a browser page from `origin` may connect. `origin` is the request's Origin
 * header as sent, such as `https://app.example.com`. Return true to allow it.
 */
export type HubOriginCheck = (origin: string, request: FastifyRequest) => boolean | Promise<boolean>

/** The resolved `allowedOrigins` option: same-origin, a set of origins, any origin, or a function. */
export type OriginPolicy =
  | { kind: 'same-origin' }
  | { kind: 'any' }
  | { kind: 'list', origins: ReadonlySet<string> }
  | { kind: 'function', check: HubOriginCheck }

/**
 * Validates the `allowedOrigins` option. Each listed origin is normalized the way browsers
 * serialize the Origin header: lowercase scheme and host, no default port, no path.
 */
export function resolveAllowedOrigins (value: unknown): OriginPolicy {
  if (value === undefined) return { kind: 'same-origin' }
  if (typeof value === 'function') return { kind: 'function', check: value as HubOriginCheck }
  if (!Array.isArray(value)) {
    throw new InvalidOptionError('allowedOrigins', `expected an array of origins or a function, got ${typeof value}`, "Pass origins such as ['https://app.example.com'], or leave it out to allow only the hub's own origin.")
  }
  if (value.includes('*')) return { kind: 'any' }

  const origins = new Set<string>()
  for (const entry of value) {
    const origin = typeof entry === 'string' ? normalizeOrigin(entry) : undefined
    if (origin === undefined) {
      throw new InvalidOptionError('allowedOrigins', `${JSON.stringify(entry)} is not an origin`, "Write each origin as scheme://host[:port] without a path, such as 'https://app.example.com', or 'null' for pages without an origin.")
    }
    origins.add(origin)
  }
  return { kind: 'list', origins }
}

/**
 * Checks the Origin header of an upgrade or negotiate request. Requests without one come from
 * non-browser clients, which cross-site WebSocket hijacking cannot use, so they pass. Without
 * a configured list, the Origin must equal the request's own origin: `request.protocol` and
 * `request.host`, which follow X-Forwarded-Proto and X-Forwarded-Host only when Fastify's
 * `trustProxy` is on.
 */
export async function isOriginAllowed (policy: OriginPolicy, request: FastifyRequest): Promise<boolean> {
  const header = request.headers.origin
  if (header === undefined) return true
  switch (policy.kind) {
    case 'any':
      return true
    case 'function':
      return await policy.check(header, request) === true
    case 'list': {
      const origin = normalizeOrigin(header)
      return origin !== undefined && policy.origins.has(origin)
    }
    case 'same-origin': {
      const origin = normalizeOrigin(header)
      const own = ownOrigin(request)
      return origin !== undefined && own !== undefined && origin === own
    }
  }
}

/**
 * Returns the origin that the request was sent to, from `request.protocol` and `request.host`.
 * Behind a proxy that terminates TLS, it starts with http: unless Fastify's `trustProxy` is on.
 */
export function ownOrigin (request: FastifyRequest): string | undefined {
  const host = request.host
  if (typeof host !== 'string' || host === '') return undefined
  const origin = normalizeOrigin(`${request.protocol}://${host}`)
  return origin === 'null' ? undefined : origin
}

/**
 * Returns the serialized origin of `text`, or undefined if it is not an origin. `null` is the
 * origin browsers send from sandboxed frames and `file:` pages, and it matches only a listed 'null'.
 */
function normalizeOrigin (text: string): string | undefined {
  if (text === 'null') return 'null'
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return undefined
  }
  // An origin has no path, query, fragment or credentials. URL.origin is 'null' for schemes
  // without an origin, such as data: and file:.
  if (url.origin === 'null' || url.username !== '' || url.password !== '') return undefined
  if (url.search !== '' || url.hash !== '' || (url.pathname !== '/' && url.pathname !== '')) return undefined
  return url.origin
}
