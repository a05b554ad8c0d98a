import type { Target } from './target.js'

/**
 * The version of the envelope format that instances exchange. An instance drops envelopes
 * of a version it does not know, so a rolling deploy that changes the format must first ship
 * a release that reads both versions.
 */
export const ENVELOPE_VERSION = 1

/** One message on its way between instances: already-encoded frames plus routing data. */
export interface Envelope {
  /** Instance id of the publisher, so that it can drop its own echo. */
  origin: string
  hub: string
  target: Target
  /** Connection ids that must not receive the message. */
  except: string[]
  /** The complete wire frame for each hub protocol, keyed by protocol name. */
  frames: Map<string, Buffer>
}

interface EnvelopeHeader {
  origin: string
  hub: string
  target: Target
  except?: string[]
  frames: Array<[name: string, length: number]>
}

export class UnsupportedEnvelopeError extends Error {
  constructor (readonly version: number) {
    super(`unsupported envelope version ${version}`)
  }
}

/**
 * Layout: one byte of format version, a 4-byte big-endian header length, the JSON header,
 * then the frames back to back. Frames stay raw bytes, so a receiver never re-parses or
 * re-encodes a payload it only forwards to sockets.
 */
export function encodeEnvelope (envelope: Envelope): Buffer {
  const header: EnvelopeHeader = {
    origin: envelope.origin,
    hub: envelope.hub,
    target: envelope.target,
    frames: [...envelope.frames].map(([name, frame]) => [name, frame.length])
  }
  if (envelope.except.length > 0) header.except = envelope.except

  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8')
  const prefix = Buffer.allocUnsafe(5)
  prefix.writeUInt8(ENVELOPE_VERSION, 0)
  prefix.writeUInt32BE(headerBytes.length, 1)
  return Buffer.concat([prefix, headerBytes, ...envelope.frames.values()])
}

/** Decodes an envelope; the frames are views into `payload`, not copies. */
export function decodeEnvelope (payload: Buffer): Envelope {
  if (payload.length < 5) throw new Error(`envelope of ${payload.length} bytes is truncated`)
  const version = payload.readUInt8(0)
  if (version !== ENVELOPE_VERSION) throw new UnsupportedEnvelopeError(version)

  const headerEnd = 5 + payload.readUInt32BE(1)
  if (headerEnd > payload.length) throw new Error('envelope header is truncated')
  const header = JSON.parse(payload.toString('utf8', 5, headerEnd)) as EnvelopeHeader

  const frames = new Map<string, Buffer>()
  let offset = headerEnd
  for (const [name, length] of header.frames) {
    if (offset + length > payload.length) throw new Error(`envelope frame "${name}" is truncated`)
    frames.set(name, payload.subarray(offset, offset + length))
    offset += length
  }
  return { origin: header.origin, hub: header.hub, target: header.target, except: header.except ?? [], frames }
}
