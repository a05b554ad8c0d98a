import { describeKind } from '../describe-value.js'
import { ProtocolError } from '../errors.js'
import type { Headers } from './messages.js'

// Field checks that both hub protocols share. Each throws FST_BACKPLANE_PROTOCOL_ERROR naming
// the field, so that a malformed message closes its connection and never reaches a hub method.

/** Checks a message type: an integer, 1 or more. Unknown types above 7 are the caller's to ignore. */
export function requireMessageType (value: unknown): number {
  if (typeof value !== 'number') throw new ProtocolError(`the message type must be a number, got ${describeKind(value)}`)
  if (!Number.isInteger(value) || value < 1) throw new ProtocolError(`the message type must be a positive integer, got ${value}`)
  return value
}

/** Checks the optional headers of a message: a map from strings to strings. */
export function readHeaders (value: unknown): Headers | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array || value instanceof Date) {
    throw new ProtocolError(`'headers' must be a map of strings, got ${describeKind(value)}`)
  }
  const entries = Object.entries(value)
  for (const [name, header] of entries) {
    if (typeof header !== 'string') throw new ProtocolError(`header '${name.slice(0, 64)}' must be a string, got ${describeKind(header)}`)
  }
  return entries.length === 0 ? undefined : value as Headers
}

/** Checks the stream ids of an invocation: strings, each once. */
export function readStreamIds (value: unknown): string[] | undefined {
  if (value === undefined || value === null) return undefined
  if (!Array.isArray(value) || !value.every((id) => typeof id === 'string')) {
    throw new ProtocolError("'streamIds' must be an array of strings")
  }
  if (new Set(value).size !== value.length) throw new ProtocolError("'streamIds' lists a stream id twice")
  return value.length === 0 ? undefined : value as string[]
}

