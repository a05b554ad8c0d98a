import { Decoder, Encoder } from '@msgpack/msgpack'
import { MessageTooLargeError, ProtocolError } from '../errors.js'
import { MessageType } from './messages.js'
import type { Headers, HubMessage, HubMessageReader, HubProtocol } from './messages.js'

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
    let pending: Buffer = Buffer.alloc(0)
    return {
      read (chunk: Buffer): HubMessage[] {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
        const messages: HubMessage[] = []
        let offset = 0
        for (;;) {
          const prefix = readVarint(pending, offset)
          if (prefix === undefined) break
          if (prefix.value > maximumMessageSize) throw new MessageTooLargeError(prefix.value, maximumMessageSize)
          const end = offset + prefix.length + prefix.value
          if (end > pending.length) break
          const message = parseMessage(pending.subarray(offset + prefix.length, end))
          if (message !== undefined) messages.push(message)
          offset = end
        }
        pending = pending.subarray(offset)
        return messages
      }
    }
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

/** Parses one MessagePack hub message. Returns undefined for types this server does not use. */
function parseMessage (body: Buffer): HubMessage | undefined {
  let fields: unknown
  try {
    fields = decoder.decode(body)
  } catch (err) {
    throw new ProtocolError(`a message is not valid MessagePack (${(err as Error).message})`)
  }
  if (!Array.isArray(fields) || fields.length === 0) throw new ProtocolError('a message is not a non-empty MessagePack array')

  const type = fields[0]
  switch (type) {
    case MessageType.Invocation:
    case MessageType.StreamInvocation: {
      requireLength(fields, 5, type)
      const invocationId = optionalString(fields[2], 'invocationId')
      const message = {
        type,
        headers: readHeaders(fields[1]),
        target: requireString(fields[3], 'target'),
        arguments: requireArray(fields[4], 'arguments'),
        ...(invocationId === undefined ? {} : { invocationId }),
        ...(fields[5] === undefined || fields[5] === null ? {} : { streamIds: requireStringArray(fields[5], 'streamIds') })
      }
      if (type === MessageType.StreamInvocation && invocationId === undefined) throw new ProtocolError("a StreamInvocation is missing 'invocationId'")
      return message as HubMessage
    }
    case MessageType.StreamItem:
      requireLength(fields, 4, type)
      return { type, headers: readHeaders(fields[1]), invocationId: requireString(fields[2], 'invocationId'), item: fields[3] }
    case MessageType.Completion:
      return parseCompletion(fields)
    case MessageType.CancelInvocation:
      requireLength(fields, 3, type)
      return { type, headers: readHeaders(fields[1]), invocationId: requireString(fields[2], 'invocationId') }
    case MessageType.Ping:
      return { type }
    case MessageType.Close: {
      requireLength(fields, 2, type)
      const message: HubMessage = { type: MessageType.Close }
      if (typeof fields[1] === 'string') message.error = fields[1]
      if (fields[2] === true) message.allowReconnect = true
      return message
    }
    default:
      if (typeof type !== 'number') throw new ProtocolError('the message type is not a number')
      return undefined
  }
}

function parseCompletion (fields: unknown[]): HubMessage {
  requireLength(fields, 4, MessageType.Completion)
  const base = { type: MessageType.Completion, headers: readHeaders(fields[1]), invocationId: requireString(fields[2], 'invocationId') }
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
      throw new ProtocolError(`invalid Completion result kind ${String(fields[3])}`)
  }
}

function requireLength (fields: unknown[], length: number, type: number): void {
  if (fields.length < length) throw new ProtocolError(`a message of type ${type} has ${fields.length} fields, expected at least ${length}`)
}

function readHeaders (value: unknown): Headers {
  if (value === null || value === undefined) return {}
  if (typeof value !== 'object' || Array.isArray(value)) throw new ProtocolError('headers must be a map')
  return value as Headers
}

function requireString (value: unknown, name: string): string {
  if (typeof value !== 'string') throw new ProtocolError(`'${name}' must be a string`)
  return value
}

function optionalString (value: unknown, name: string): string | undefined {
  if (value === null || value === undefined) return undefined
  return requireString(value, name)
}

function requireArray (value: unknown, name: string): unknown[] {
  if (!Array.isArray(value)) throw new ProtocolError(`'${name}' must be an array`)
  return value
}

function requireStringArray (value: unknown, name: string): string[] {
  const array = requireArray(value, name)
  if (!array.every((item) => typeof item === 'string')) throw new ProtocolError(`'${name}' must be an array of strings`)
  return array as string[]
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
