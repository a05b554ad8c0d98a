import type { Target } from './target.js'

/**
 * The version of the envelope format that instances exchange. An instance logs and drops
 * envelopes of a version it does not know, so a rolling deploy that changes the format must
 * first ship a release that reads both versions.
 */
export const ENVELOPE_VERSION = 1

/** A hub invocation on its way to other instances, already encoded once per protocol. */
export interface InvocationEnvelope {
  type: 'invocation'
  /** The publishing process (instance id plus a random suffix), so that it can drop its own echo. */
  origin: string
  /** Sequence number per origin; receivers use it to drop copies that arrive on several channels. */
  id: number
  hub: string
  target: Target
  /** Connection ids that must not receive the message. */
  except: string[]
  /** The complete wire frame for each hub protocol, keyed by protocol name. */
  frames: Map<string, Buffer>
}

/** Asks the instance that owns a connection to add it to a group or remove it. */
export interface GroupCommandEnvelope {
  type: 'group'
  origin: string
  requestId: number
  hub: string
  connectionId: string
  group: string
  action: 'add' | 'remove'
}

/** Asks the instance that owns a connection to invoke a client method and return its result. */
export interface ClientInvocationEnvelope {
  type: 'client-invocation'
  origin: string
  requestId: number
  hub: string
  connectionId: string
  method: string
  arguments: unknown[]
}

/** Asks every instance with the hub for its local connection count. */
export interface PresenceQueryEnvelope {
  type: 'presence'
  origin: string
  requestId: number
  hub: string
  group?: string
}

/** A health probe that an instance publishes on its own channel to time the round trip. */
export interface ProbeEnvelope {
  type: 'probe'
  origin: string
  requestId: number
}

/** The reply to a request envelope, published on the requesting instance's channel. */
export interface ReplyEnvelope {
  type: 'reply'
  origin: string
  requestId: number
  /** The local connection count, for presence queries. */
  count?: number
  /** The client's result, for client invocations. */
  result?: unknown
  /** Why a client invocation failed: the error code and the client's or server's text. */
  error?: { code: string, message: string }
}

export type Envelope = InvocationEnvelope | GroupCommandEnvelope | ClientInvocationEnvelope | PresenceQueryEnvelope | ProbeEnvelope | ReplyEnvelope

type Header = Omit<InvocationEnvelope, 'frames' | 'except'> & { except?: string[], frames: Array<[name: string, length: number]> }
  | GroupCommandEnvelope | ClientInvocationEnvelope | PresenceQueryEnvelope | ProbeEnvelope | ReplyEnvelope

export class UnsupportedEnvelopeError extends Error {
  constructor (readonly version: number) {
    super(`unsupported envelope version ${version}`)
  }
}

/**
 * Layout: one byte of format version, a 4-byte big-endian header length, the JSON header,
 * then any frames back to back. Frames stay raw bytes, so a receiver never re-parses or
 * re-encodes a payload it only forwards to sockets.
 */
export function encodeEnvelope (envelope: Envelope): Buffer {
  let header: Header
  let frames: Buffer[] = []
  if (envelope.type === 'invocation') {
    const { origin, id, hub, target, except, frames: byProtocol } = envelope
    // `type` and `origin` come first, in this order, so that `isInvocationFrom()` can recognise
    // an instance's own echo from the first bytes.
    header = { type: 'invocation', origin, id, hub, target, frames: [...byProtocol].map(([name, frame]) => [name, frame.length]) }
    if (except.length > 0) header.except = except
    frames = [...byProtocol.values()]
  } else {
    header = envelope
  }

  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8')
  const prefix = Buffer.allocUnsafe(5)
  prefix.writeUInt8(ENVELOPE_VERSION, 0)
  prefix.writeUInt32BE(headerBytes.length, 1)
  return Buffer.concat([prefix, headerBytes, ...frames])
}

/**
 * Returns the first bytes of the JSON header of every invocation envelope that `origin`
 * publishes, for `isInvocationFrom()`. The closing quote and the comma after the origin keep
 * one origin from matching another that starts with it.
 */
export function invocationHeaderStart (origin: string): Buffer {
  return Buffer.from(`{"type":"invocation","origin":${JSON.stringify(origin)},`, 'utf8')
}

/**
 * Checks whether `payload` is an invocation envelope that the origin of `headerStart` published.
 * The sender drops its own echo this way, with a byte comparison instead of parsing the header.
 */
export function isInvocationFrom (payload: Buffer, headerStart: Buffer): boolean {
  return payload.length >= 5 + headerStart.length &&
    payload[0] === ENVELOPE_VERSION &&
    payload.compare(headerStart, 0, headerStart.length, 5, 5 + headerStart.length) === 0
}

/** Decodes an envelope; frames are views into `payload`, not copies. */
export function decodeEnvelope (payload: Buffer): Envelope {
  if (payload.length < 5) throw new Error(`envelope of ${payload.length} bytes is truncated`)
  const version = payload.readUInt8(0)
  if (version !== ENVELOPE_VERSION) throw new UnsupportedEnvelopeError(version)

  const headerEnd = 5 + payload.readUInt32BE(1)
  if (headerEnd > payload.length) throw new Error('envelope header is truncated')
  const header = JSON.parse(payload.toString('utf8', 5, headerEnd)) as Header
  if (header.type !== 'invocation') return header

  const frames = new Map<string, Buffer>()
  let offset = headerEnd
  for (const [name, length] of header.frames) {
    if (offset + length > payload.length) throw new Error(`envelope frame "${name}" is truncated`)
    frames.set(name, payload.subarray(offset, offset + length))
    offset += length
  }
  return { ...header, except: header.except ?? [], frames }
}
