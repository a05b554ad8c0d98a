import { Decoder, Encoder } from '@msgpack/msgpack'
import { MessageTooLargeError, ProtocolError } from '../errors.js'
import { describeKind } from '../describe-value.js'
import { readHeaders, readStreamIds, requireMessageType } from './fields.js'
import { MessageType } from './messages.js'
import type { HubMessage, HubMessageReader, HubProtocol } from './messages.js'
import { checkMessagePackStructure } from './msgpack-scan.js'

// Completion result kinds of the MessagePack hub protocol.
const ERROR_RESULT = 1
const VOID_RESULT = 2
const NON_VOID_RESULT = 3

/** A varint length prefix takes at most 5 bytes, which covers lengths up to 2^31 - 1. */
const MAXIMUM_PREFIX_LENGTH = 5

/**
 * The SignalR MessagePack hub protocol: each message is a MessagePack array, framed by a
 * varint length prefix (7 bits per byte, least significant group first). Versions 1 and 2 are
 * accepted; version 2 only adds the stateful-reconnect messages, which this server never enables.
 */
export const messagePackHubProtocol: HubProtocol = {
  name: 'messagepack',
  version: 2,
  transferFormat: 'binary',

  writeMessage (message: HubMessage): Buffer {
    const body = encoder.encode(toArray(message))
    return Buffer.concat([writeVarint(body.length), body])
  },

  createReader (maximumMessageSize: number): HubMessageReader {
    return new MessagePackMessageReader(maximumMessageSize)
  }
}

/**
 * Reads length-prefixed MessagePack hub messages from one connection's byte stream. A class
 * rather than a closure, because every connection keeps one.
 */
class MessagePackMessageReader implements HubMessageReader {
  readonly #maximumMessageSize: number
  /** The bytes of a message that is still incomplete. */
  #pending: Buffer | undefined

  constructor (maximumMessageSize: number) {
    this.#maximumMessageSize = maximumMessageSize
  }

  read (chunk: Buffer): HubMessage[] {
    const pending = this.#pending === undefined ? chunk : Buffer.concat([this.#pending, chunk])
    const messages: HubMessage[] = []
    let offset = 0
    for (;;) {
      const prefix = readVarint(pending, offset)
      if (prefix === undefined) break
      if (prefix.value > this.#maximumMessageSize) throw new MessageTooLargeError(prefix.value, this.#maximumMessageSize)
      const end = offset + prefix.length + prefix.value
      if (end > pending.length) break
      const message = parseMessage(pending.subarray(offset + prefix.length, end))
      if (message !== undefined) messages.push(message)
      offset = end
    }
    this.#pending = offset === pending.length ? undefined : pending.subarray(offset)
    return messages
  }
}

const encoder = new Encoder({ ignoreUndefined: false })
const decoder = new Decoder()

function toArray (message: HubMessage): unknown[] {
  switch (message.type) {
    case MessageType.Invocation:
      return withStreamIds([message.type, message.headers ?? {}, message.invocationId ?? null, message.target, message.arguments], message.streamIds)
    case MessageType.StreamItem:
      return [message.type, message.headers ?? {}, message.invocationId, message.item]
    case MessageType.Completion:
      if (message.error !== undefined) return [message.type, message.headers ?? {}, message.invocationId, ERROR_RESULT, message.error]
      if (message.result !== undefined) return [message.type, message.headers ?? {}, message.invocationId, NON_VOID_RESULT, message.result]
      return [message.type, message.headers ?? {}, message.invocationId, VOID_RESULT]
    case MessageType.StreamInvocation:
      return withStreamIds([message.type, message.headers ?? {}, message.invocationId, message.target, message.arguments], message.streamIds)
    case MessageType.CancelInvocation:
      return [message.type, message.headers ?? {}, message.invocationId]
    case MessageType.Ping:
      return [message.type]
    case MessageType.Close:
      return message.allowReconnect === true
        ? [message.type, message.error ?? null, true]
        : [message.type, message.error ?? null]
  }
}

function withStreamIds (fields: unknown[], streamIds: string[] | undefined): unknown[] {
  return streamIds !== undefined && streamIds.length > 0 ? [...fields, streamIds] : fields
}

/**
 * Parses one MessagePack hub message. Returns undefined for types this server does not use.
 * The structure is checked before decoding, and every field after it, so that a malformed
 * message closes its connection and never reaches a hub method.
 */
function parseMessage (body: Buffer): HubMessage | undefined {
  checkMessagePackStructure(body)
  let fields: unknown
  try {
    fields = decoder.decode(body)
  } catch (err) {
    throw new ProtocolError(`a message is not valid MessagePack (${(err as Error).message})`)
  }
  if (!Array.isArray(fields) || fields.length === 0) throw new ProtocolError('a message is not a non-empty MessagePack array')

  const type = requireMessageType(fields[0])
  switch (type) {
    case MessageType.Invocation:
    case MessageType.StreamInvocation: {
      requireLength(fields, 5, type)
      const headers = readHeaders(fields[1])
      const invocationId = optionalString(fields[2], 'invocationId')
      const streamIds = readStreamIds(fields[5])
      if (type === MessageType.StreamInvocation && invocationId === undefined) throw new ProtocolError("a StreamInvocation is missing 'invocationId'")
      const message = {
        type,
        target: requireString(fields[3], 'target'),
        arguments: requireArray(fields[4], 'arguments'),
        ...(headers === undefined ? {} : { headers }),
        ...(invocationId === undefined ? {} : { invocationId }),
        ...(streamIds === undefined ? {} : { streamIds })
      }
      return message as HubMessage
    }
    case MessageType.StreamItem:
      requireLength(fields, 4, type)
      return withHeaders({ type, invocationId: requireString(fields[2], 'invocationId'), item: fields[3] }, fields[1])
    case MessageType.Completion:
      return parseCompletion(fields)
    case MessageType.CancelInvocation:
      requireLength(fields, 3, type)
      return withHeaders({ type, invocationId: requireString(fields[2], 'invocationId') }, fields[1])
    case MessageType.Ping:
      return { type }
    case MessageType.Close: {
      requireLength(fields, 2, type)
      const message: HubMessage = { type: MessageType.Close }
      const error = optionalString(fields[1], 'error')
      if (error !== undefined) message.error = error
      if (fields[2] !== undefined && fields[2] !== null) {
        if (typeof fields[2] !== 'boolean') throw new ProtocolError(`'allowReconnect' must be a boolean, got ${describeKind(fields[2])}`)
        message.allowReconnect = fields[2]
      }
      return message
    }
    default:
      return undefined
  }
}

function parseCompletion (fields: unknown[]): HubMessage {
  requireLength(fields, 4, MessageType.Completion)
  const base = withHeaders({ type: MessageType.Completion, invocationId: requireString(fields[2], 'invocationId') }, fields[1])
  switch (fields[3]) {
    case ERROR_RESULT:
      requireLength(fields, 5, MessageType.Completion)
      return { ...base, error: requireString(fields[4], 'error') }
    case VOID_RESULT:
      return base
    case NON_VOID_RESULT:
      requireLength(fields, 5, MessageType.Completion)
      return { ...base, result: fields[4] }
    default:
      throw new ProtocolError(`invalid Completion result kind ${describeResultKind(fields[3])}`)
  }
}

/** Adds the message's headers when it has any, after checking them. */
function withHeaders<T extends HubMessage> (message: T, headers: unknown): T {
  const checked = readHeaders(headers)
  return checked === undefined ? message : { ...message, headers: checked }
}

function describeResultKind (kind: unknown): string {
  return typeof kind === 'number' ? String(kind) : describeKind(kind)
}

function requireLength (fields: unknown[], length: number, type: number): void {
  if (fields.length < length) throw new ProtocolError(`a message of type ${type} has ${fields.length} fields, expected at least ${length}`)
}

function requireString (value: unknown, name: string): string {
  if (typeof value !== 'string') throw new ProtocolError(`'${name}' must be a string, got ${describeKind(value)}`)
  return value
}

function optionalString (value: unknown, name: string): string | undefined {
  if (value === null || value === undefined) return undefined
  return requireString(value, name)
}

function requireArray (value: unknown, name: string): unknown[] {
  if (!Array.isArray(value)) throw new ProtocolError(`'${name}' must be an array, got ${describeKind(value)}`)
  return value
}

function writeVarint (value: number): Buffer {
  const bytes: number[] = []
  do {
    let byte = value & 0x7f
    value >>>= 7
    if (value > 0) byte |= 0x80
    bytes.push(byte)
  } while (value > 0)
  return Buffer.from(bytes)
}

/** Reads a varint length prefix at `offset`; undefined while its bytes have not all arrived. */
function readVarint (buffer: Buffer, offset: number): { value: number, length: number } | undefined {
  let value = 0
  for (let index = 0; index < MAXIMUM_PREFIX_LENGTH; index++) {
    if (offset + index >= buffer.length) return undefined
    const byte = buffer[offset + index]!
    value += (byte & 0x7f) * 2 ** (7 * index)
    if ((byte & 0x80) === 0) return { value, length: index + 1 }
  }
  throw new ProtocolError('a message length prefix is longer than 5 bytes')
}
