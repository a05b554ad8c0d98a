import { isUtf8 } from 'node:buffer'
import secureJson from 'secure-json-parse'
import { InvalidUtf8Error, ProtocolError } from '../errors.js'
import { describeKind } from '../describe-value.js'
import { readHeaders, readStreamIds, requireMessageType } from './fields.js'
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
    return new JsonMessageReader(maximumMessageSize)
  }
}

/**
 * Reads JSON hub messages from one connection's byte stream. It is a splitter subclass rather
 * than a closure because every connection keeps one, and one object costs less than a closure
 * with its context and the splitter it captures.
 */
class JsonMessageReader extends RecordSeparatorSplitter implements HubMessageReader {
  read (chunk: Buffer): HubMessage[] {
    const messages: HubMessage[] = []
    for (const record of this.split(chunk)) {
      const message = parseJsonMessage(record)
      if (message !== undefined) messages.push(message)
    }
    return messages
  }
}

/**
 * Parses and validates one JSON hub message. Returns undefined for message types this server
 * does not use (Ack, Sequence and types added by later protocol revisions), which the
 * protocol allows receivers to ignore. Every field is checked for its type, and a message
 * with a `__proto__` key, or a `constructor` key holding `prototype`, is rejected, as
 * Fastify's JSON body parser rejects it by default.
 */
export function parseJsonMessage (record: Buffer): HubMessage | undefined {
  // Text frames arrive checked by ws, but a client may send JSON in binary frames, and
  // Buffer#toString would silently replace invalid bytes.
  if (!isUtf8(record)) throw new InvalidUtf8Error()
  let value: unknown
  try {
    value = secureJson.parse(record.toString('utf8'), null, { protoAction: 'error', constructorAction: 'error' })
  } catch (err) {
    const forbidden = err instanceof SyntaxError && err.message.includes('forbidden prototype property')
    throw new ProtocolError(forbidden ? 'a message contains a forbidden __proto__ or constructor.prototype key' : 'a message is not valid JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ProtocolError('a message is not a JSON object')
  }

  const fields = value as Record<string, unknown>
  if (fields.type === undefined) throw new ProtocolError("missing required property 'type'")
  const type = requireMessageType(fields.type)
  switch (type) {
    case MessageType.Invocation:
      return withOptionalFields({
        type: MessageType.Invocation,
        target: requireString(fields, 'target'),
        arguments: requireArray(fields, 'arguments')
      }, {
        invocationId: optionalString(fields, 'invocationId'),
        streamIds: readStreamIds(fields.streamIds),
        headers: readHeaders(fields.headers)
      })
    case MessageType.StreamItem:
      return withOptionalFields({ type: MessageType.StreamItem, invocationId: requireString(fields, 'invocationId'), item: fields.item }, { headers: readHeaders(fields.headers) })
    case MessageType.Completion:
      return parseCompletion(fields)
    case MessageType.StreamInvocation:
      return withOptionalFields({
        type: MessageType.StreamInvocation,
        invocationId: requireString(fields, 'invocationId'),
        target: requireString(fields, 'target'),
        arguments: requireArray(fields, 'arguments')
      }, {
        streamIds: readStreamIds(fields.streamIds),
        headers: readHeaders(fields.headers)
      })
    case MessageType.CancelInvocation:
      return withOptionalFields({ type: MessageType.CancelInvocation, invocationId: requireString(fields, 'invocationId') }, { headers: readHeaders(fields.headers) })
    case MessageType.Ping:
      return { type: MessageType.Ping }
    case MessageType.Close:
      return parseClose(fields)
    default:
      return undefined
  }
}

function parseCompletion (fields: Record<string, unknown>): HubMessage {
  const invocationId = requireString(fields, 'invocationId')
  const headers = readHeaders(fields.headers)
  const error = optionalString(fields, 'error')
  if (error !== undefined) {
    if ('result' in fields) throw new ProtocolError("a Completion carries both 'result' and 'error'")
    return withOptionalFields({ type: MessageType.Completion, invocationId, error }, { headers })
  }
  return 'result' in fields
    ? withOptionalFields({ type: MessageType.Completion, invocationId, result: fields.result }, { headers })
    : withOptionalFields({ type: MessageType.Completion, invocationId }, { headers })
}

function parseClose (fields: Record<string, unknown>): HubMessage {
  const message: HubMessage = { type: MessageType.Close }
  const error = optionalString(fields, 'error')
  if (error !== undefined) message.error = error
  const allowReconnect = fields.allowReconnect
  if (allowReconnect !== undefined && allowReconnect !== null) {
    if (typeof allowReconnect !== 'boolean') throw new ProtocolError(`property 'allowReconnect' must be a boolean, got ${describeKind(allowReconnect)}`)
    message.allowReconnect = allowReconnect
  }
  return message
}

/** Adds the optional fields that are present, so that absent ones do not appear as undefined. */
function withOptionalFields<T extends HubMessage> (message: T, optional: Record<string, unknown>): T {
  for (const [name, value] of Object.entries(optional)) {
    if (value !== undefined) (message as unknown as Record<string, unknown>)[name] = value
  }
  return message
}

function requireString (fields: Record<string, unknown>, name: string): string {
  const value = fields[name]
  if (typeof value !== 'string') throw new ProtocolError(`missing required string property '${name}'`)
  return value
}

function optionalString (fields: Record<string, unknown>, name: string): string | undefined {
  const value = fields[name]
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string') throw new ProtocolError(`property '${name}' must be a string, got ${describeKind(value)}`)
  return value
}

function requireArray (fields: Record<string, unknown>, name: string): unknown[] {
  const value = fields[name]
  if (!Array.isArray(value)) throw new ProtocolError(`missing required array property '${name}'`)
  return value
}
