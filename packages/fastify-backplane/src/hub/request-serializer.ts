import type { FastifyRequest } from 'fastify'

/** Query parameters whose values are credentials: the bearer token and the negotiated token. */
const SECRET_PARAMETERS = /([?&](?:access_token|id)=)[^&#]*/gi

/** Replaces the values of `access_token` and `id` in a URL's query string with `[REDACTED]`. */
export function redactUrl (url: string): string {
  return url.replace(SECRET_PARAMETERS, '$1[REDACTED]')
}

/**
 * Serializes a request for Fastify's logger like the default `req` serializer, but with the
 * tokens that SignalR clients put in the query string redacted. Use it as
 * `Fastify({ logger: { serializers: { req: requestSerializer } } })`.
 */
export function requestSerializer (request: FastifyRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: redactUrl(request.url),
    version: request.headers?.['accept-version'],
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort
  }
}
