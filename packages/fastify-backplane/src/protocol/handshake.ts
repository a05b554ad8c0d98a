import { HandshakeError } from '../errors.js'
import type { HandshakeRequest } from './messages.js'
import { RECORD_SEPARATOR_CHAR } from './record-separator.js'

/** Parses the JSON handshake request, whatever protocol the client then asks for. */
export function parseHandshakeRequest (record: Buffer): HandshakeRequest {
  let value: unknown
  try {
    value = JSON.parse(record.toString('utf8'))
  } catch {
    throw new HandshakeError('the handshake request is not valid JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HandshakeError('the handshake request is not a JSON object')
  }

  const { protocol, version } = value as Record<string, unknown>
  if (typeof protocol !== 'string') {
    throw new HandshakeError("missing required string property 'protocol'")
  }
  if (typeof version !== 'number' || !Number.isInteger(version)) {
    throw new HandshakeError("missing required integer property 'version'")
  }
  return { protocol, version }
}

/** Encodes a handshake response: `{}` on success, `{"error": ...}` on failure. */
export function writeHandshakeResponse (error?: string): string {
  const body = error === undefined ? '{}' : JSON.stringify({ error })
  return body + RECORD_SEPARATOR_CHAR
}
