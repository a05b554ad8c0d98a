import { ProtocolError } from '../errors.js'
import { MessageType } from './messages.js'
import type { HubMessage, HubMessageReader, HubProtocol } from './messages.js'
import { RECORD_SEPARATOR_CHAR, RecordSeparatorSplitter } from './record-separator.js'

/**
 * The SignalR JSON hub protocol: UTF-8 JSON objects, each ended by 0x1E. Versions 1 and 2 are
 * accepted; version 2 only adds the stateful-reconnect messages, which this server never enables.
 */
export const jsonHubProtocol: HubProtocol = {
  name: 'json',
  version: 2,
  transferFormat: 'text',

  writeMessage (message: HubMessage): Buffer {
    return Buffer.from(JSON.stringify(message) + RECORD_SEPARATOR_CHAR, 'utf8')
  },

  createReader (maximumMessageSize: number): HubMessageReader {
    const splitter = new RecordSeparatorSplitter(maximumMessageSize)
    return {
      read (chunk: Buffer): HubMessage[] {
        const messages: HubMessage[] = []
        for (const record of splitter.split(chunk)) {
          const message = parseJsonMessage(record)
          if (message !== undefined) messages.push(message)
        }
        return messages
      }
    }
  }
}

/**
 * Parses and validates one JSON hub message. Returns undefined for message types this server
 * does not use (Ack, Sequence and types added by later protocol revisions), which the
 * protocol allows receivers to ignore.
 */
export function parseJsonMessage (record: Buffer): HubMessage | undefined {
  let value: unknown
  try {
    value = JSON.parse(record.toString('utf8'))
  } catch {
    throw new ProtocolError('a message is not valid JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ProtocolError('a message is not a JSON object')
  }

  const fields = value as Record<string, unknown>
  switch (fields.type) {
    case MessageType.Invocation:
      return {
        type: MessageType.Invocation,
        target: requireString(fields, 'target'),
        arguments: requireArray(fields, 'arguments'),
        ...optionalInvocationId(fields),
        ...optionalStreamIds(fields)
      }
    case MessageType.StreamItem:
      return { type: MessageType.StreamItem, invocationId: requireString(fields, 'invocationId'), item: fields.item }
    case MessageType.Completion:
      return parseCompletion(fields)
    case MessageType.StreamInvocation:
      return {
        type: MessageType.StreamInvocation,
        invocationId: requireString(fields, 'invocationId'),
        target: requireString(fields, 'target'),
        arguments: requireArray(fields, 'arguments'),
        ...optionalStreamIds(fields)
      }
    case MessageType.CancelInvocation:
      return { type: MessageType.CancelInvocation, invocationId: requireString(fields, 'invocationId') }
    case MessageType.Ping:
      return { type: MessageType.Ping }
    case MessageType.Close:
      return parseClose(fields)
    case undefined:
      throw new ProtocolError("missing required property 'type'")
    default:
      if (typeof fields.type !== 'number') {
        throw new ProtocolError(`property 'type' must be a number, got ${typeof fields.type}`)
      }
      return undefined
  }
}

function parseCompletion (fields: Record<string, unknown>): HubMessage {
  const invocationId = requireString(fields, 'invocationId')
  if (fields.error !== undefined && fields.error !== null) {
    if ('result' in fields) throw new ProtocolError("a Completion carries both 'result' and 'error'")
    if (typeof fields.error !== 'string') throw new ProtocolError("property 'error' must be a string")
    return { type: MessageType.Completion, invocationId, error: fields.error }
  }
  return 'result' in fields
    ? { type: MessageType.Completion, invocationId, result: fields.result }
    : { type: MessageType.Completion, invocationId }
}

function parseClose (fields: Record<string, unknown>): HubMessage {
  const message: HubMessage = { type: MessageType.Close }
  if (typeof fields.error === 'string') message.error = fields.error
  if (typeof fields.allowReconnect === 'boolean') message.allowReconnect = fields.allowReconnect
  return message
}

function requireString (fields: Record<string, unknown>, name: string): string {
  const value = fields[name]
  if (typeof value !== 'string') throw new ProtocolError(`missing required string property '${name}'`)
  return value
}

function requireArray (fields: Record<string, unknown>, name: string): unknown[] {
  const value = fields[name]
  if (!Array.isArray(value)) throw new ProtocolError(`missing required array property '${name}'`)
  return value
}

function optionalInvocationId (fields: Record<string, unknown>): { invocationId?: string } {
  const value = fields.invocationId
  if (value === undefined || value === null) return {}
  if (typeof value !== 'string') throw new ProtocolError("property 'invocationId' must be a string")
  return { invocationId: value }
}

function optionalStreamIds (fields: Record<string, unknown>): { streamIds?: string[] } {
  const value = fields.streamIds
  if (value === undefined || value === null) return {}
  if (!Array.isArray(value) || !value.every((id) => typeof id === 'string')) {
    throw new ProtocolError("property 'streamIds' must be an array of strings")
  }
  return { streamIds: value }
}
