import assert from 'node:assert/strict'
import { once } from 'node:events'
import { test } from 'node:test'
import { encode } from '@msgpack/msgpack'
import { MessagePackHubProtocol } from '@microsoft/signalr-protocol-msgpack'
import fc from 'fast-check'
import WebSocket from 'ws'
import type { HubConnectionContext, HubMessage } from '../src/index.js'
import { jsonHubProtocol, messagePackHubProtocol, MessageType } from '../src/index.js'
import { parseHandshakeRequest } from '../src/protocol/handshake.js'
import { parseJsonMessage } from '../src/protocol/json.js'
import { checkMessagePackStructure } from '../src/protocol/msgpack-scan.js'
import { startInstance } from './helpers/instances.js'
import { Opcode, RawFrameClient } from './helpers/raw-frames.js'
import { RS } from './helpers/raw-hub.js'
import { frameMessage } from './helpers/raw-msgpack.js'
import { baseUrl, connectClient } from './helpers/signalr.js'
import { collectProcessErrors } from './helpers/process-errors.js'

// Property-based tests: random and half-valid input never makes a parser throw anything but
// a coded protocol error, and never crashes the live hub or disturbs its other clients.
// Every property has a fixed number of runs, so the file finishes in well under 30 seconds.

const PROTOCOL_ERRORS = new Set(['FST_BACKPLANE_PROTOCOL_ERROR', 'FST_BACKPLANE_INVALID_UTF8', 'FST_BACKPLANE_MESSAGE_TOO_LARGE'])

/** Calls `parse` and fails unless it returns or throws one of the protocol's coded errors. */
function parsesOrRejects<T> (parse: () => T, codes = PROTOCOL_ERRORS): T | undefined {
  try {
    return parse()
  } catch (err) {
    const code = (err as { code?: unknown }).code
    assert.ok(typeof code === 'string' && codes.has(code), `unexpected error: ${String(err)}`)
    return undefined
  }
}

/** Checks the shape every parsed message must have, whatever the input was. */
function assertWellFormed (message: HubMessage): void {
  const isId = (value: unknown): boolean => typeof value === 'string'
  switch (message.type) {
    case MessageType.Invocation:
    case MessageType.StreamInvocation:
      assert.equal(typeof message.target, 'string')
      assert.ok(Array.isArray(message.arguments))
      assert.ok(message.invocationId === undefined || isId(message.invocationId))
      assert.ok(message.streamIds === undefined || message.streamIds.every(isId))
      assert.ok(message.headers === undefined || Object.values(message.headers).every((value) => typeof value === 'string'))
      break
    case MessageType.StreamItem:
    case MessageType.CancelInvocation:
      assert.ok(isId(message.invocationId))
      break
    case MessageType.Completion:
      assert.ok(isId(message.invocationId))
      assert.ok(message.error === undefined || typeof message.error === 'string')
      break
    case MessageType.Close:
      assert.ok(message.error === undefined || typeof message.error === 'string')
      assert.ok(message.allowReconnect === undefined || typeof message.allowReconnect === 'boolean')
      break
    case MessageType.Ping:
      break
    default:
      assert.fail(`parsed an unknown message type ${String((message as { type: unknown }).type)}`)
  }
}

/** Values of any JSON type, nested a few levels. */
const jsonValue = fc.jsonValue({ maxDepth: 3 })
/** Values for a field: usually of a plausible type, sometimes of any type. */
const fieldValue = fc.oneof(fc.string({ maxLength: 10 }), fc.integer(), fc.constant(null), fc.boolean(), jsonValue)

/** Objects that look like hub messages: a plausible type and fields of plausible or wrong types. */
const messageLike = fc.record({
  type: fc.oneof(fc.integer({ min: -1, max: 10 }), fc.double(), fc.string({ maxLength: 2 })),
  invocationId: fieldValue,
  target: fc.oneof(fc.constantFrom('Echo', 'Sum', 'Nope', ''), fieldValue),
  arguments: fc.oneof(fc.array(jsonValue, { maxLength: 4 }), fieldValue),
  streamIds: fc.oneof(fc.array(fc.string({ maxLength: 4 }), { maxLength: 3 }), fieldValue),
  headers: fc.oneof(fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 })), fieldValue),
  item: jsonValue,
  result: jsonValue,
  error: fieldValue,
  allowReconnect: fieldValue
}, { requiredKeys: ['type'] })

/** Arrays that look like MessagePack hub messages: a plausible type followed by fields of any type. */
const messagePackLike = fc.tuple(fc.integer({ min: 0, max: 10 }), fc.array(fc.oneof(fieldValue, fc.array(jsonValue, { maxLength: 3 })), { maxLength: 6 }))
  .map(([type, fields]) => [type, ...fields])

test('JSON parser rejects only with codes', () => {
  fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), messageLike.map((value) => Buffer.from(JSON.stringify(value)))), (bytes) => {
    const message = parsesOrRejects(() => parseJsonMessage(Buffer.from(bytes)))
    if (message !== undefined) assertWellFormed(message)
  }), { numRuns: 2000 })
})

test('JSON reader handles any chunking', () => {
  fc.assert(fc.property(fc.array(messageLike, { maxLength: 5 }), fc.array(fc.nat(), { maxLength: 5 }), (messages, cuts) => {
    const stream = Buffer.from(messages.map((message) => JSON.stringify(message) + RS).join(''))
    const reader = jsonHubProtocol.createReader(4096)
    let offset = 0
    for (const cut of [...cuts.map((value) => value % (stream.length + 1)).sort((a, b) => a - b), stream.length]) {
      const chunk = stream.subarray(offset, Math.max(offset, cut))
      offset = Math.max(offset, cut)
      const parsed = parsesOrRejects(() => reader.read(chunk))
      if (parsed === undefined) return
      for (const message of parsed) assertWellFormed(message)
    }
  }), { numRuns: 500 })
})

test('MessagePack reader rejects only with codes', () => {
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
    messagePackLike.map((message) => frameMessage(message))
  )
  fc.assert(fc.property(input, (bytes) => {
    const messages = parsesOrRejects(() => messagePackHubProtocol.createReader(4096).read(bytes))
    for (const message of messages ?? []) assertWellFormed(message)
  }), { numRuns: 2000 })
})

test('MessagePack scan accepts every encoded value', () => {
  const value = fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.uint8Array({ maxLength: 300 }), fc.array(fc.string({ maxLength: 300 }), { maxLength: 20 }), fc.double(), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }))
  fc.assert(fc.property(value, (item) => {
    checkMessagePackStructure(encode(item, { useBigInt64: true }))
  }), { numRuns: 1000 })
})

test('MessagePack scan rejects truncated values', () => {
  fc.assert(fc.property(fc.array(fc.jsonValue({ maxDepth: 2 }), { minLength: 1, maxLength: 5 }), fc.nat(), (items, cut) => {
    const bytes = encode(items)
    const length = cut % bytes.length
    assert.throws(() => checkMessagePackStructure(bytes.subarray(0, length)), { code: 'FST_BACKPLANE_PROTOCOL_ERROR' })
  }), { numRuns: 500 })
})

test('handshake parser rejects only with codes', () => {
  const handshakeLike = fc.record({ protocol: fc.oneof(fc.constantFrom('json', 'messagepack'), fieldValue), version: fieldValue }, { requiredKeys: [] })
  const input = fc.oneof(fc.uint8Array({ maxLength: 100 }).map((bytes) => Buffer.from(bytes)), handshakeLike.map((value) => Buffer.from(JSON.stringify(value))))
  fc.assert(fc.property(input, (bytes) => {
    parsesOrRejects(() => parseHandshakeRequest(bytes), new Set(['FST_BACKPLANE_HANDSHAKE_FAILED']))
  }), { numRuns: 1000 })
})

test('live hub survives random frames', async (t) => {
  const unexpected = collectProcessErrors(t, { uncaught: true })

  const app = await startInstance(t, {
    hub: {
      // The healthy client invokes once per run, faster than the default rate limit allows.
      maximumInvocationsPerSecond: 10_000,
      maximumReceiveMessageSize: 4096,
      maximumWebSocketMessageSize: 16 * 1024,
      methods: {
        Echo: (_context: HubConnectionContext, value: unknown) => value,
        Sum: async (_context: HubConnectionContext, numbers: AsyncIterable<number>) => {
          let sum = 0
          for await (const value of numbers) sum += Number(value)
          return sum
        },
        Join: async (context: HubConnectionContext, group: unknown) => { await context.groups.add(group as string) }
      }
    }
  })
  const healthy = await connectClient(app, '/testHub', (builder) => builder.withHubProtocol(new MessagePackHubProtocol()))
  t.after(() => healthy.stop())
  const url = baseUrl(app).replace(/^http/, 'ws') + '/testHub'
  let round = 0

  const handshake = fc.oneof(
    fc.constant(`{"protocol":"json","version":1}${RS}`),
    fc.constant(`{"protocol":"messagepack","version":1}${RS}`),
    fc.string({ maxLength: 40 })
  )
  const frame = fc.oneof(
    messageLike.map((message) => JSON.stringify(message) + RS),
    messagePackLike.map((message) => frameMessage(message)),
    fc.uint8Array({ maxLength: 100 }).map((bytes) => Buffer.from(bytes)),
    fc.string({ maxLength: 50 })
  )

  await fc.assert(fc.asyncProperty(handshake, fc.array(frame, { maxLength: 8 }), async (first, frames) => {
    const socket = new WebSocket(url)
    socket.on('error', () => {})
    await once(socket, 'open')
    socket.send(first)
    for (const data of frames) socket.send(data, { binary: Buffer.isBuffer(data) })
    // Give the server a moment to process the frames before the socket goes away.
    await new Promise((resolve) => setTimeout(resolve, 5))
    socket.terminate()

    const tag = `round ${round++}`
    assert.equal(await healthy.invoke('Echo', tag), tag)
    assert.deepEqual(unexpected, [])
  }), { numRuns: 400 })
})

test('live hub survives random WebSocket bytes', async (t) => {
  const unexpected = collectProcessErrors(t, { uncaught: true })

  const app = await startInstance(t, {
    hub: { maximumInvocationsPerSecond: 10_000, methods: { Echo: (_context: HubConnectionContext, value: unknown) => value } }
  })
  const healthy = await connectClient(app, '/testHub')
  t.after(() => healthy.stop())
  const address = app.server.address()
  assert.ok(address !== null && typeof address === 'object')
  let round = 0

  // Valid frame headers with random flags and opcodes, or plain random bytes.
  const frameParts = fc.record({
    opcode: fc.integer({ min: 0, max: 15 }),
    fin: fc.boolean(),
    rsv: fc.integer({ min: 0, max: 7 }),
    masked: fc.boolean(),
    payload: fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes))
  })
  const chunk = fc.oneof(fc.uint8Array({ maxLength: 64 }).map((bytes) => ({ raw: Buffer.from(bytes) })), frameParts)

  await fc.assert(fc.asyncProperty(fc.boolean(), fc.array(chunk, { minLength: 1, maxLength: 6 }), async (handshakeFirst, chunks) => {
    const client = await RawFrameClient.open(address.port, '/testHub')
    if (handshakeFirst) client.send({ opcode: Opcode.Text, payload: `{"protocol":"json","version":1}${RS}` })
    for (const item of chunks) {
      if ('raw' in item) client.write(item.raw)
      else client.send(item)
    }
    await new Promise((resolve) => setTimeout(resolve, 5))
    client.destroy()

    const tag = `round ${round++}`
    assert.equal(await healthy.invoke('Echo', tag), tag)
    assert.deepEqual(unexpected, [])
  }), { numRuns: 300 })
})
