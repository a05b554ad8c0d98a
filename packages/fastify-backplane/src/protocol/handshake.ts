import { isUtf8 } from 'node:buffer'
import { HandshakeError } from '../errors.js'
import type { HandshakeRequest } from './messages.js'
import { RECORD_SEPARATOR_CHAR } from './record-separator.js'

/**
 * The maximum length of a protocol name in a handshake. Known names are short ("json",
 * "messagepack"), and the rejection text repeats the name to the client.
 */
const MAXIMUM_PROTOCOL_NAME_LENGTH = 64

/** Parses the JSON handshake request, whatever protocol the client then asks for. */
export function parseHandshakeRequest (record: Buffer): HandshakeRequest {
  if (!isUtf8(record)) throw new HandshakeError('the handshake request is not valid UTF-8')
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
  if (protocol.length > MAXIMUM_PROTOCOL_NAME_LENGTH) {
    throw new HandshakeError(`property 'protocol' has ${protocol.length} characters, more than the ${MAXIMUM_PROTOCOL_NAME_LENGTH} a protocol name may have`)
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
