import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { InvalidConnectionTokenError } from '../errors.js'

/** The payload of a negotiated connection token. */
export interface ConnectionTokenPayload {
  hub: string
  connectionId: string
  /** Milliseconds since the epoch after which the token is rejected. */
  expiresAt: number
}

/**
 * Issues and verifies the `connectionToken` of SignalR's negotiate response. A token is the
 * payload in base64url, a dot, and its HMAC-SHA256 under the shared secret, so any instance
 * can verify a token that another instance issued without shared state. Single use is
 * enforced separately, by the caller.
 */
export class ConnectionTokens {
  readonly #secret: Buffer
  readonly #hub: string
  readonly #lifetime: number

  constructor (secret: string, hub: string, lifetime: number) {
    this.#secret = Buffer.from(secret, 'utf8')
    this.#hub = hub
    this.#lifetime = lifetime
  }

  issue (now = Date.now()): { connectionId: string, connectionToken: string } {
    const payload: ConnectionTokenPayload = { hub: this.#hub, connectionId: randomBytes(16).toString('base64url'), expiresAt: now + this.#lifetime }
    const body = Buffer.from(JSON.stringify(payload), 'utf8').toString('base64url')
    return { connectionId: payload.connectionId, connectionToken: `${body}.${this.#sign(body)}` }
  }

  /** Returns the payload of a valid token; throws FST_BACKPLANE_INVALID_CONNECTION_TOKEN otherwise. */
  verify (token: string, now = Date.now()): ConnectionTokenPayload {
    const [body, signature, extra] = token.split('.')
    if (body === undefined || signature === undefined || extra !== undefined) throw new InvalidConnectionTokenError('malformed token')

    const expected = Buffer.from(this.#sign(body), 'utf8')
    const actual = Buffer.from(signature, 'utf8')
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) throw new InvalidConnectionTokenError('invalid signature')

    let payload: ConnectionTokenPayload
    try {
      payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as ConnectionTokenPayload
    } catch {
      throw new InvalidConnectionTokenError('malformed token')
    }
    if (payload.hub !== this.#hub) throw new InvalidConnectionTokenError('issued for another hub')
    if (typeof payload.expiresAt !== 'number' || payload.expiresAt < now) throw new InvalidConnectionTokenError('expired')
    if (typeof payload.connectionId !== 'string') throw new InvalidConnectionTokenError('malformed token')
    return payload
  }

  #sign (body: string): string {
    return createHmac('sha256', this.#secret).update(body).digest('base64url')
  }
}
