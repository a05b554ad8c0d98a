import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import { MessagePackHubProtocol } from '@microsoft/signalr-protocol-msgpack'
import type { HubConnection } from '@microsoft/signalr'
import type { FastifyInstance } from 'fastify'
import type { HubConnectionContext } from '../src/index.js'
import { startInstance } from './helpers/instances.js'
import { encodeFrame, Opcode, RawFrameClient } from './helpers/raw-frames.js'
import { JSON_HANDSHAKE, RawHubClient, RS } from './helpers/raw-hub.js'
import { encodeVarint, frameMessage, RawMessagePackClient } from './helpers/raw-msgpack.js'
import { connectClient } from './helpers/signalr.js'
import { collectProcessErrors } from './helpers/process-errors.js'

// One server receives every malformed handshake, hub message and WebSocket frame in the table
// below, each on a connection of its own, while two official clients (JSON and MessagePack)
// stay connected. After every case both must still round-trip an invocation, the server must
// not have logged at error level, and no promise may have been left rejected.

const MAXIMUM_MESSAGE_SIZE = 4096
const MAXIMUM_WEBSOCKET_MESSAGE_SIZE = 64 * 1024
const HANDSHAKE_FAILED = 'An unexpected error occurred during connection handshake.'
const JSON_CLOSED = '{"type":7,"error":"Connection closed with an error.","allowReconnect":true}'
const MESSAGEPACK_CLOSED = [7, 'Connection closed with an error.', true]

/** What the server must do with a case's input. */
type Expectation =
  /** Close the socket with this WebSocket code, after sending `lastMessage` if given. */
  | { close: number, lastMessage?: unknown, reason?: string }
  /** Keep the connection open and send these messages, then reply to a probe invocation. */
  | { replies: unknown[] }

interface Case {
  name: string
  kind: 'handshake' | 'json' | 'messagepack' | 'frames'
  /** For handshake, json and messagepack cases: WebSocket messages (string: text, Buffer: binary). */
  send?: Array<string | Buffer>
  /** For frames cases: the raw bytes to write after the upgrade and a valid JSON handshake. */
  frames?: Buffer[]
  expect: Expectation
}

function json (message: unknown): string {
  return JSON.stringify(message) + RS
}

function jsonClosed (reason = 'FST_BACKPLANE_PROTOCOL_ERROR'): Expectation {
  return { close: 1000, lastMessage: JSON_CLOSED, reason }
}

function messagePackClosed (reason = 'FST_BACKPLANE_PROTOCOL_ERROR'): Expectation {
  return { close: 1000, lastMessage: MESSAGEPACK_CLOSED, reason }
}

function handshakeRejected (error: string): Expectation {
  return { close: 1000, lastMessage: JSON.stringify({ error }) }
}

/** Frames a MessagePack body given as raw bytes with its varint length prefix. */
function rawMessagePack (...bytes: number[]): Buffer {
  return Buffer.concat([encodeVarint(bytes.length), Buffer.from(bytes)])
}

function frame (opcode: number, payload: Buffer | string = '', options: { fin?: boolean, rsv?: number, masked?: boolean } = {}): Buffer {
  return encodeFrame({ opcode, payload, ...options })
}

const longId = 'i'.repeat(129)
const longTarget = 'M'.repeat(129)

const cases: Case[] = [
  // Handshakes, sent as the first WebSocket message. Each gets the handshake error and a close.
  { name: 'handshake not JSON', kind: 'handshake', send: [`not json${RS}`], expect: handshakeRejected(HANDSHAKE_FAILED) },
  { name: 'handshake empty record', kind: 'handshake', send: [RS], expect: handshakeRejected(HANDSHAKE_FAILED) },
  { name: 'handshake JSON array', kind: 'handshake', send: [`[]${RS}`], expect: handshakeRejected(HANDSHAKE_FAILED) },
  { name: 'handshake without protocol', kind: 'handshake', send: [`{"version":1}${RS}`], expect: handshakeRejected(HANDSHAKE_FAILED) },
  { name: 'handshake numeric protocol', kind: 'handshake', send: [`{"protocol":1,"version":1}${RS}`], expect: handshakeRejected(HANDSHAKE_FAILED) },
  { name: 'handshake fractional version', kind: 'handshake', send: [`{"protocol":"json","version":1.5}${RS}`], expect: handshakeRejected(HANDSHAKE_FAILED) },
  { name: 'handshake string version', kind: 'handshake', send: [`{"protocol":"json","version":"1"}${RS}`], expect: handshakeRejected(HANDSHAKE_FAILED) },
  { name: 'handshake unknown protocol', kind: 'handshake', send: [`{"protocol":"xml","version":1}${RS}`], expect: handshakeRejected("The protocol 'xml' is not supported.") },
  { name: 'handshake overlong protocol', kind: 'handshake', send: [json({ protocol: 'p'.repeat(65), version: 1 })], expect: handshakeRejected(HANDSHAKE_FAILED) },
  { name: 'handshake version 0', kind: 'handshake', send: [`{"protocol":"json","version":0}${RS}`], expect: handshakeRejected("The server does not support version 0 of the 'json' protocol.") },
  { name: 'handshake version 99', kind: 'handshake', send: [`{"protocol":"json","version":99}${RS}`], expect: handshakeRejected("The server does not support version 99 of the 'json' protocol.") },
  { name: 'handshake invalid UTF-8', kind: 'handshake', send: [Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x1e])], expect: handshakeRejected(HANDSHAKE_FAILED) },
  { name: 'handshake over size limit', kind: 'handshake', send: ['{"protocol":"' + 'x'.repeat(MAXIMUM_MESSAGE_SIZE)], expect: handshakeRejected('Handshake was canceled.') },

  // JSON hub messages that break the protocol: a Close message and a normal close.
  { name: 'JSON not JSON', kind: 'json', send: [`{type:1}${RS}`], expect: jsonClosed() },
  { name: 'JSON array message', kind: 'json', send: [`[1]${RS}`], expect: jsonClosed() },
  { name: 'JSON without type', kind: 'json', send: [json({ target: 'Echo', arguments: [] })], expect: jsonClosed() },
  { name: 'JSON string type', kind: 'json', send: [json({ type: '1', target: 'Echo', arguments: [] })], expect: jsonClosed() },
  { name: 'JSON fractional type', kind: 'json', send: [json({ type: 1.5 })], expect: jsonClosed() },
  { name: 'JSON type 0', kind: 'json', send: [json({ type: 0 })], expect: jsonClosed() },
  { name: 'JSON numeric target', kind: 'json', send: [json({ type: 1, invocationId: '1', target: 7, arguments: [] })], expect: jsonClosed() },
  { name: 'JSON object arguments', kind: 'json', send: [json({ type: 1, invocationId: '1', target: 'Echo', arguments: { 0: 'x' } })], expect: jsonClosed() },
  { name: 'JSON numeric invocationId', kind: 'json', send: [json({ type: 1, invocationId: 1, target: 'Echo', arguments: [] })], expect: jsonClosed() },
  { name: 'JSON streamIds not array', kind: 'json', send: [json({ type: 1, invocationId: '1', target: 'Echo', arguments: [], streamIds: 's' })], expect: jsonClosed() },
  { name: 'JSON numeric stream id', kind: 'json', send: [json({ type: 1, invocationId: '1', target: 'Echo', arguments: [], streamIds: [1] })], expect: jsonClosed() },
  { name: 'JSON duplicate stream ids', kind: 'json', send: [json({ type: 1, invocationId: '1', target: 'Echo', arguments: [], streamIds: ['s', 's'] })], expect: jsonClosed() },
  { name: 'JSON headers array', kind: 'json', send: [json({ type: 1, invocationId: '1', target: 'Echo', arguments: [], headers: ['a'] })], expect: jsonClosed() },
  { name: 'JSON numeric header value', kind: 'json', send: [json({ type: 1, invocationId: '1', target: 'Echo', arguments: [], headers: { a: 1 } })], expect: jsonClosed() },
  { name: 'JSON StreamInvocation without id', kind: 'json', send: [json({ type: 4, target: 'Echo', arguments: [] })], expect: jsonClosed() },
  { name: 'JSON StreamItem without id', kind: 'json', send: [json({ type: 2, item: 1 })], expect: jsonClosed() },
  { name: 'JSON Completion result and error', kind: 'json', send: [json({ type: 3, invocationId: '1', result: 1, error: 'e' })], expect: jsonClosed() },
  { name: 'JSON Completion numeric error', kind: 'json', send: [json({ type: 3, invocationId: '1', error: 5 })], expect: jsonClosed() },
  { name: 'JSON CancelInvocation null id', kind: 'json', send: [json({ type: 5, invocationId: null })], expect: jsonClosed() },
  { name: 'JSON Close string allowReconnect', kind: 'json', send: [json({ type: 7, allowReconnect: 'yes' })], expect: jsonClosed() },
  { name: 'JSON __proto__ in arguments', kind: 'json', send: [`{"type":1,"invocationId":"1","target":"Echo","arguments":[{"__proto__":{"admin":true}}]}${RS}`], expect: jsonClosed() },
  { name: 'JSON constructor.prototype', kind: 'json', send: [`{"type":1,"invocationId":"1","target":"Echo","arguments":[{"constructor":{"prototype":{"admin":true}}}]}${RS}`], expect: jsonClosed() },
  { name: 'JSON in a binary frame', kind: 'json', send: [Buffer.concat([Buffer.from('{"type":1,"target":"Echo","arguments":["'), Buffer.from([0xc3, 0x28]), Buffer.from(`"]}${RS}`)])], expect: { close: 1003, lastMessage: JSON_CLOSED, reason: 'FST_BACKPLANE_UNSUPPORTED_FRAME_TYPE' } },
  { name: 'JSON message over size limit', kind: 'json', send: [json({ type: 1, target: 'Echo', arguments: ['x'.repeat(MAXIMUM_MESSAGE_SIZE)] })], expect: jsonClosed('FST_BACKPLANE_MESSAGE_TOO_LARGE') },
  { name: 'JSON overlong invocation id', kind: 'json', send: [json({ type: 1, invocationId: longId, target: 'Echo', arguments: [] })], expect: { close: 1008, lastMessage: JSON.stringify({ type: 7, error: 'Connection closed with an error. FST_BACKPLANE_ID_TOO_LONG: Invocation id of 129 characters exceeds the hub\'s maximumInvocationIdLength of 128. Use shorter ids; official SignalR clients send short counters.' }), reason: 'FST_BACKPLANE_ID_TOO_LONG' } },
  { name: 'JSON overlong stream id', kind: 'json', send: [json({ type: 1, invocationId: '1', target: 'Sum', arguments: [], streamIds: [longId] })], expect: { close: 1008, reason: 'FST_BACKPLANE_ID_TOO_LONG' } },

  // JSON hub messages that are valid but unusual: the connection stays open.
  { name: 'JSON Ack type ignored', kind: 'json', send: [json({ type: 8, sequenceId: 1 })], expect: { replies: [] } },
  { name: 'JSON future type ignored', kind: 'json', send: [json({ type: 42, anything: [1, 2] })], expect: { replies: [] } },
  { name: 'JSON unknown method', kind: 'json', send: [json({ type: 1, invocationId: 'u', target: 'Nope', arguments: [] })], expect: { replies: [{ type: 3, invocationId: 'u', error: "Failed to invoke 'Nope' due to an error on the server. HubException: Method does not exist." }] } },
  { name: 'JSON overlong method name', kind: 'json', send: [json({ type: 1, invocationId: 'n', target: longTarget, arguments: [] })], expect: { replies: [{ type: 3, invocationId: 'n', error: `Failed to invoke '${'M'.repeat(64)}...'. FST_BACKPLANE_METHOD_NAME_TOO_LONG: A method name of 129 characters exceeds the hub's maximumMethodNameLength of 128, so no hub method has it. Check the method name.` }] } },
  { name: 'JSON arguments fail schema', kind: 'json', send: [json({ type: 1, invocationId: 's', target: 'Add', arguments: [1, 'two'] })], expect: { replies: [{ type: 3, invocationId: 's', error: "Failed to invoke 'Add'. FST_BACKPLANE_INVALID_ARGUMENTS: Invalid arguments for Add: arguments/1 must be number. Send arguments that match the method's schema." }] } },
  { name: 'JSON StreamItem unknown stream', kind: 'json', send: [json({ type: 2, invocationId: 'nowhere', item: 1 })], expect: { replies: [] } },
  { name: 'JSON Completion unknown id', kind: 'json', send: [json({ type: 3, invocationId: 'nowhere', result: 1 })], expect: { replies: [] } },
  { name: 'JSON CancelInvocation unknown id', kind: 'json', send: [json({ type: 5, invocationId: 'nowhere' })], expect: { replies: [] } },
  { name: 'JSON string headers accepted', kind: 'json', send: [json({ type: 1, invocationId: 'h', target: 'Echo', arguments: ['h'], headers: { trace: 'abc' } })], expect: { replies: [{ type: 3, invocationId: 'h', result: 'h' }] } },

  // MessagePack hub messages that break the protocol.
  { name: 'MessagePack unused byte 0xc1', kind: 'messagepack', send: [rawMessagePack(0xc1)], expect: messagePackClosed() },
  { name: 'MessagePack not an array', kind: 'messagepack', send: [rawMessagePack(0x01)], expect: messagePackClosed() },
  { name: 'MessagePack empty array', kind: 'messagepack', send: [rawMessagePack(0x90)], expect: messagePackClosed() },
  { name: 'MessagePack string type', kind: 'messagepack', send: [frameMessage(['1', {}, '1', 'Echo', []])], expect: messagePackClosed() },
  { name: 'MessagePack short Invocation', kind: 'messagepack', send: [frameMessage([1, {}, '1', 'Echo'])], expect: messagePackClosed() },
  { name: 'MessagePack numeric target', kind: 'messagepack', send: [frameMessage([1, {}, '1', 7, []])], expect: messagePackClosed() },
  { name: 'MessagePack map arguments', kind: 'messagepack', send: [frameMessage([1, {}, '1', 'Echo', { 0: 'x' }])], expect: messagePackClosed() },
  { name: 'MessagePack headers array', kind: 'messagepack', send: [frameMessage([1, ['a'], '1', 'Echo', []])], expect: messagePackClosed() },
  { name: 'MessagePack numeric header value', kind: 'messagepack', send: [frameMessage([1, { a: 1 }, '1', 'Echo', []])], expect: messagePackClosed() },
  { name: 'MessagePack StreamInvocation nil id', kind: 'messagepack', send: [frameMessage([4, {}, null, 'Echo', []])], expect: messagePackClosed() },
  { name: 'MessagePack Completion kind 9', kind: 'messagepack', send: [frameMessage([3, {}, '1', 9])], expect: messagePackClosed() },
  { name: 'MessagePack numeric Completion error', kind: 'messagepack', send: [frameMessage([3, {}, '1', 1, 5])], expect: messagePackClosed() },
  { name: 'MessagePack Close string allowReconnect', kind: 'messagepack', send: [frameMessage([7, null, 'yes'])], expect: messagePackClosed() },
  { name: 'MessagePack __proto__ map key', kind: 'messagepack', send: [rawMessagePack(0x95, 0x01, 0x80, 0xc0, 0xa4, ...Buffer.from('Echo'), 0x91, 0x81, 0xa9, ...Buffer.from('__proto__'), 0xc3)], expect: messagePackClosed() },
  // Five bytes that declare an array of 30 million elements, which the decoder would allocate.
  { name: 'MessagePack huge declared array', kind: 'messagepack', send: [rawMessagePack(0xdd, 0x01, 0xc9, 0xc3, 0x80)], expect: messagePackClosed() },
  { name: 'MessagePack nested declared arrays', kind: 'messagepack', send: [rawMessagePack(...Array.from({ length: 100 }, () => [0xdc, 0xff, 0xff]).flat())], expect: messagePackClosed() },
  { name: 'MessagePack bytes after value', kind: 'messagepack', send: [rawMessagePack(0x91, 0x06, 0x06)], expect: messagePackClosed() },
  { name: 'MessagePack string past end', kind: 'messagepack', send: [rawMessagePack(0x92, 0x01, 0xd9, 0xff)], expect: messagePackClosed() },
  { name: 'MessagePack 6-byte length prefix', kind: 'messagepack', send: [Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x01])], expect: messagePackClosed() },
  { name: 'MessagePack prefix over size limit', kind: 'messagepack', send: [encodeVarint(MAXIMUM_MESSAGE_SIZE + 1)], expect: messagePackClosed('FST_BACKPLANE_MESSAGE_TOO_LARGE') },
  { name: 'MessagePack overlong invocation id', kind: 'messagepack', send: [frameMessage([1, {}, longId, 'Echo', []])], expect: { close: 1008, reason: 'FST_BACKPLANE_ID_TOO_LONG' } },
  { name: 'MessagePack future type ignored', kind: 'messagepack', send: [frameMessage([42, 'anything'])], expect: { replies: [] } },
  { name: 'MessagePack unknown method', kind: 'messagepack', send: [frameMessage([1, {}, 'u', 'Nope', []])], expect: { replies: [[3, {}, 'u', 1, "Failed to invoke 'Nope' due to an error on the server. HubException: Method does not exist."]] } },
  // Text frames reach the MessagePack reader as bytes too; no valid hub message is ASCII.
  { name: 'MessagePack text frame', kind: 'messagepack', send: ['\u0001\u0001'], expect: { ...messagePackClosed('FST_BACKPLANE_UNSUPPORTED_FRAME_TYPE'), close: 1003 } },

  // WebSocket frames that break RFC 6455, after a valid JSON handshake. ws closes these.
  { name: 'frame with RSV1 set', kind: 'frames', frames: [frame(Opcode.Text, json({ type: 6 }), { rsv: 4 })], expect: { close: 1002 } },
  { name: 'frame with RSV2 set', kind: 'frames', frames: [frame(Opcode.Text, json({ type: 6 }), { rsv: 2 })], expect: { close: 1002 } },
  { name: 'frame with RSV3 set', kind: 'frames', frames: [frame(Opcode.Text, json({ type: 6 }), { rsv: 1 })], expect: { close: 1002 } },
  { name: 'unmasked client frame', kind: 'frames', frames: [frame(Opcode.Text, json({ type: 6 }), { masked: false })], expect: { close: 1002 } },
  { name: 'reserved data opcode 3', kind: 'frames', frames: [frame(0x3, 'x')], expect: { close: 1002 } },
  { name: 'reserved control opcode 0xB', kind: 'frames', frames: [frame(0xb, 'x')], expect: { close: 1002 } },
  { name: 'continuation without start', kind: 'frames', frames: [frame(Opcode.Continuation, json({ type: 6 }))], expect: { close: 1002 } },
  { name: 'text frame inside fragmented message', kind: 'frames', frames: [frame(Opcode.Text, '{"type"', { fin: false }), frame(Opcode.Text, ':6}' + RS)], expect: { close: 1002 } },
  { name: 'fragmented Ping', kind: 'frames', frames: [frame(Opcode.Ping, 'x', { fin: false })], expect: { close: 1002 } },
  { name: 'Ping over 125 bytes', kind: 'frames', frames: [frame(Opcode.Ping, 'x'.repeat(126))], expect: { close: 1002 } },
  { name: 'Close with 1-byte payload', kind: 'frames', frames: [frame(Opcode.Close, Buffer.from([0x03]))], expect: { close: 1002 } },
  { name: 'Close with invalid code 999', kind: 'frames', frames: [frame(Opcode.Close, Buffer.from([0x03, 0xe7]))], expect: { close: 1002 } },
  { name: 'Close reason invalid UTF-8', kind: 'frames', frames: [frame(Opcode.Close, Buffer.from([0x03, 0xe8, 0xff]))], expect: { close: 1007 } },
  { name: 'text frame invalid UTF-8', kind: 'frames', frames: [frame(Opcode.Text, Buffer.from([0x7b, 0xc3, 0x28, 0x7d, 0x1e]))], expect: { close: 1007 } },
  { name: 'message over maxPayload', kind: 'frames', frames: [frame(Opcode.Binary, Buffer.alloc(MAXIMUM_WEBSOCKET_MESSAGE_SIZE + 1, 0x20))], expect: { close: 1009 } },
  { name: 'fragments over maxPayload', kind: 'frames', frames: [frame(Opcode.Binary, Buffer.alloc(MAXIMUM_WEBSOCKET_MESSAGE_SIZE, 0x20), { fin: false }), frame(Opcode.Continuation, Buffer.alloc(16, 0x20))], expect: { close: 1009 } },
  { name: 'Ping between fragments accepted', kind: 'frames', frames: [frame(Opcode.Text, '{"type":1,"invocationId":"f",', { fin: false }), frame(Opcode.Ping, 'p'), frame(Opcode.Continuation, `"target":"Echo","arguments":["f"]}${RS}`)], expect: { replies: ['{"type":3,"invocationId":"f","result":"f"}'] } }
]

const methods = {
  Echo: (_context: HubConnectionContext, value: unknown) => value,
  Sum: async (_context: HubConnectionContext, numbers: AsyncIterable<number>) => {
    let sum = 0
    for await (const value of numbers) sum += value
    return sum
  },
  Add: {
    handler: (_context: HubConnectionContext, a: number, b: number) => a + b,
    schema: { type: 'array', items: [{ type: 'number' }, { type: 'number' }], minItems: 2, maxItems: 2 }
  }
}

/** Pings may arrive at any time; they are not part of a case's expected replies. */
function isPing (message: unknown): boolean {
  return message === '{"type":6}' || (Array.isArray(message) && message.length === 1 && message[0] === 6)
}

async function runHandshakeOrJsonCase (t: TestContext, app: FastifyInstance, entry: Case): Promise<void> {
  const client = entry.kind === 'handshake' ? await RawHubClient.connect(app) : await RawHubClient.connectAndHandshake(app)
  t.after(() => client.close())
  for (const data of entry.send ?? []) client.send(data)

  if ('close' in entry.expect) {
    const closed = await client.closed
    assert.equal(closed.code, entry.expect.close, 'WebSocket close code')
    if (entry.expect.reason !== undefined) assert.equal(closed.reason, entry.expect.reason, 'WebSocket close reason')
    const records = client.records.filter((record) => !isPing(record))
    if (entry.expect.lastMessage !== undefined) assert.equal(records.at(-1), entry.expect.lastMessage, 'last message before the close')
    return
  }

  client.sendMessages({ type: 1, invocationId: 'probe', target: 'Echo', arguments: ['probe'] })
  const received: string[] = []
  while (received.length < entry.expect.replies.length + 1) {
    const record = await client.nextRecord()
    if (!isPing(record)) received.push(record)
  }
  const expected = [...entry.expect.replies.map((reply) => typeof reply === 'string' ? reply : JSON.stringify(reply)), '{"type":3,"invocationId":"probe","result":"probe"}']
  assert.deepEqual(received, expected)
}

async function runMessagePackCase (t: TestContext, app: FastifyInstance, entry: Case): Promise<void> {
  const client = await RawMessagePackClient.connectAndHandshake(app)
  t.after(() => client.close())
  for (const data of entry.send ?? []) client.send(data)

  if ('close' in entry.expect) {
    const closed = await client.closed
    assert.equal(closed.code, entry.expect.close, 'WebSocket close code')
    if (entry.expect.reason !== undefined) assert.equal(closed.reason, entry.expect.reason, 'WebSocket close reason')
    if (entry.expect.lastMessage !== undefined) assert.deepEqual(client.messages.filter((message) => !isPing(message)).at(-1), entry.expect.lastMessage, 'last message before the close')
    return
  }

  client.sendMessages([1, {}, 'probe', 'Echo', ['probe']])
  const received: unknown[] = []
  while (received.length < entry.expect.replies.length + 1) {
    const message = await client.nextMessage()
    if (!isPing(message)) received.push(message)
  }
  assert.deepEqual(received, [...entry.expect.replies, [3, {}, 'probe', 3, 'probe']])
}

async function runFramesCase (t: TestContext, app: FastifyInstance, entry: Case): Promise<void> {
  const address = app.server.address()
  assert.ok(address !== null && typeof address === 'object')
  const client = await RawFrameClient.open(address.port, '/testHub')
  t.after(() => client.destroy())
  client.send({ opcode: Opcode.Text, payload: JSON_HANDSHAKE })
  const [handshake] = await client.waitForFrames(1)
  assert.equal(handshake?.payload.toString('utf8'), '{}' + RS)

  for (const bytes of entry.frames ?? []) client.write(bytes)

  if ('close' in entry.expect) {
    const closed = await client.closed
    assert.equal(closed.code, entry.expect.close, 'WebSocket close code')
    return
  }
  const dataFrames = async (count: number): Promise<string[]> => {
    const frames = await client.waitForFrames(count)
    return frames.filter((item) => item.opcode === Opcode.Text).map((item) => item.payload.toString('utf8')).filter((text) => text !== '{"type":6}' + RS)
  }
  const expected = ['{}', ...entry.expect.replies.map(String)].map((text) => text + RS)
  let texts = await dataFrames(expected.length)
  while (texts.length < expected.length) texts = await dataFrames(client.frames.length + 1)
  assert.deepEqual(texts, expected)
  const pongs = client.frames.filter((item) => item.opcode === Opcode.Pong)
  assert.ok(entry.name !== 'Ping between fragments accepted' || pongs.length === 1, 'the Ping got a Pong')
}

test('malformed input table', async (t) => {
  assert.ok(cases.length >= 40, `the table has ${cases.length} cases`)
  const logLines: string[] = []
  const app = await startInstance(t, {
    logLines,
    hub: { methods, maximumReceiveMessageSize: MAXIMUM_MESSAGE_SIZE, maximumWebSocketMessageSize: MAXIMUM_WEBSOCKET_MESSAGE_SIZE }
  })
  const unhandled = collectProcessErrors(t)

  const healthy: Array<[string, HubConnection]> = [
    ['JSON', await connectClient(app, '/testHub')],
    ['MessagePack', await connectClient(app, '/testHub', (builder) => builder.withHubProtocol(new MessagePackHubProtocol()))]
  ]
  t.after(() => Promise.all(healthy.map(([, connection]) => connection.stop())))

  for (const entry of cases) {
    await t.test(entry.name, async (t) => {
      if (entry.kind === 'messagepack') await runMessagePackCase(t, app, entry)
      else if (entry.kind === 'frames') await runFramesCase(t, app, entry)
      else await runHandshakeOrJsonCase(t, app, entry)

      for (const [protocol, connection] of healthy) {
        assert.equal(await connection.invoke('Echo', entry.name), entry.name, `the healthy ${protocol} client round-trips`)
      }
      const errors = logLines.filter((line) => (JSON.parse(line) as { level: number }).level >= 50)
      assert.deepEqual(errors, [], 'no error-level log lines')
      assert.deepEqual(unhandled, [], 'no unhandled rejections')
    })
  }
})

