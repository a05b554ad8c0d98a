import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import { encode } from '@msgpack/msgpack'
import type { FastifyInstance } from 'fastify'
import type { HubOptions } from '../src/index.js'
import { startInstance } from './helpers/instances.js'
import { encodeVarint, frameMessage, MESSAGEPACK_HANDSHAKE, RawMessagePackClient } from './helpers/raw-msgpack.js'
import { connectClient } from './helpers/signalr.js'

// MessagePack hub messages are arrays: Invocation [1, headers, invocationId, target, arguments],
// Completion [3, headers, invocationId, resultKind, result?] with result kind 1 for an error,
// 2 for no result and 3 for a result, Ping [6], Close [7, error, allowReconnect].
const CLOSED_WITH_ERROR = [7, 'Connection closed with an error.', true]

const methods = {
  Echo: (_context: unknown, value: unknown) => value,
  Nothing: () => {}
}

async function startHub (t: TestContext, options: Partial<HubOptions> = {}): Promise<FastifyInstance> {
  return await startInstance(t, { hub: { methods, ...options } })
}

async function connect (t: TestContext, app: FastifyInstance): Promise<RawMessagePackClient> {
  const client = await RawMessagePackClient.connectAndHandshake(app)
  t.after(() => client.close())
  return client
}

function echo (invocationId: string, value: unknown): unknown[] {
  return [1, {}, invocationId, 'Echo', [value]]
}

/** Builds an Echo invocation whose encoded body is exactly `size` bytes, and returns its string too. */
function echoOfSize (size: number): { message: unknown[], value: string } {
  // MessagePack gives a string under 32 bytes a 1-byte header, one under 256 bytes a 2-byte
  // header and one under 65536 bytes a 3-byte header. The empty string has the 1-byte form.
  const withoutString = encode(echo('1', '')).length - 1
  for (const [header, limit] of [[1, 32], [2, 256], [3, 65_536]] as const) {
    const length = size - withoutString - header
    if (length >= 0 && length < limit) {
      const value = 'x'.repeat(length)
      assert.equal(encode(echo('1', value)).length, size)
      return { message: echo('1', value), value }
    }
  }
  throw new Error(`no Echo invocation encodes to ${size} bytes`)
}

/** Checks that the server still accepts the official client and runs its invocations. */
async function assertServerStillServes (t: TestContext, app: FastifyInstance): Promise<void> {
  const client = await connectClient(app, '/testHub')
  t.after(() => client.stop())
  assert.equal(await client.invoke('Echo', 'still up'), 'still up')
}

test('text handshake, then binary messages', async (t) => {
  const app = await startHub(t)
  const client = await RawMessagePackClient.connect(app)
  t.after(() => client.close())

  client.send(MESSAGEPACK_HANDSHAKE)
  assert.equal(await client.waitForHandshake(), '{}')
  client.sendMessages(echo('1', 'hello'))
  client.sendMessages([1, {}, '2', 'Nothing', []])

  assert.deepEqual(await client.nextMessage(), [3, {}, '1', 3, 'hello'])
  assert.deepEqual(await client.nextMessage(), [3, {}, '2', 2])
  // The two Completions may share one message, because the hub joins what it writes in one pass.
  const afterHandshake = client.frames.slice(1)
  assert.ok(afterHandshake.length >= 1)
  assert.ok(afterHandshake.every((frame) => frame.binary), 'the server sends hub messages in binary frames')
})

test('handshake and invocation in one frame', async (t) => {
  const app = await startHub(t)
  const client = await RawMessagePackClient.connect(app)
  t.after(() => client.close())

  client.send(Buffer.concat([Buffer.from(MESSAGEPACK_HANDSHAKE), frameMessage(echo('1', 'same frame'))]))

  assert.equal(await client.waitForHandshake(), '{}')
  assert.deepEqual(await client.nextMessage(), [3, {}, '1', 3, 'same frame'])
})

test('message split across frames', async (t) => {
  const app = await startHub(t)
  const client = await connect(t, app)
  const { message, value } = echoOfSize(300)
  const bytes = frameMessage(message)
  assert.equal(encodeVarint(300).length, 2)

  // The first frame ends inside the length prefix, the second inside the body.
  client.send(bytes.subarray(0, 1))
  client.send(bytes.subarray(1, 100))
  client.send(bytes.subarray(100))

  assert.deepEqual(await client.nextMessage(), [3, {}, '1', 3, value])
})

test('message split into single bytes', async (t) => {
  const app = await startHub(t)
  const client = await connect(t, app)
  const bytes = frameMessage(echo('1', 'byte by byte'))

  for (let index = 0; index < bytes.length; index++) client.send(bytes.subarray(index, index + 1))

  assert.deepEqual(await client.nextMessage(), [3, {}, '1', 3, 'byte by byte'])
})

test('two messages in one frame', async (t) => {
  const app = await startHub(t)
  const client = await connect(t, app)

  client.sendMessages(echo('a', 1), echo('b', [2, 'two']))

  assert.deepEqual(await client.nextMessage(), [3, {}, 'a', 3, 1])
  assert.deepEqual(await client.nextMessage(), [3, {}, 'b', 3, [2, 'two']])
})

test('message and a half per frame', async (t) => {
  const app = await startHub(t)
  const client = await connect(t, app)
  const first = frameMessage(echo('a', 'first'))
  const second = frameMessage(echo('b', 'second'))
  const split = Math.floor(second.length / 2)

  client.send(Buffer.concat([first, second.subarray(0, split)]))
  client.send(second.subarray(split))

  assert.deepEqual(await client.nextMessage(), [3, {}, 'a', 3, 'first'])
  assert.deepEqual(await client.nextMessage(), [3, {}, 'b', 3, 'second'])
})

test('multi-byte length prefixes', async (t) => {
  const app = await startHub(t, { maximumReceiveMessageSize: 64 * 1024 })
  const client = await connect(t, app)

  // 128 is the smallest length with a 2-byte prefix, 16384 the smallest with a 3-byte one.
  for (const [size, prefixLength] of [[128, 2], [300, 2], [16_383, 2], [16_384, 3], [40_000, 3]] as const) {
    const { message, value } = echoOfSize(size)
    assert.equal(encodeVarint(size).length, prefixLength, `prefix of ${size}`)
    client.sendMessages(message)
    assert.deepEqual(await client.nextMessage(), [3, {}, '1', 3, value], `message of ${size} bytes`)
  }
})

test('message of maximum size accepted', async (t) => {
  const maximum = 1024
  const app = await startHub(t, { maximumReceiveMessageSize: maximum })
  const client = await connect(t, app)
  const { message, value } = echoOfSize(maximum)

  client.sendMessages(message)

  assert.deepEqual(await client.nextMessage(), [3, {}, '1', 3, value])
})

test('message one byte too large closes', async (t) => {
  const maximum = 1024
  const app = await startHub(t, { maximumReceiveMessageSize: maximum })
  const client = await connect(t, app)

  client.sendMessages(echoOfSize(maximum + 1).message)

  assert.deepEqual(await client.nextMessage(), CLOSED_WITH_ERROR)
  await client.closed
  await assertServerStillServes(t, app)
})

test('oversized length prefix closes early', async (t) => {
  const app = await startHub(t, { maximumReceiveMessageSize: 1024 })
  const client = await connect(t, app)

  // Only the prefix is sent, so the server has to reject the length before any body arrives.
  client.send(encodeVarint(1_000_000))

  assert.deepEqual(await client.nextMessage(), CLOSED_WITH_ERROR)
  const closed = await client.closed
  assert.equal(closed.code, 1000)
  await assertServerStillServes(t, app)
})

test('oversized prefix split across frames', async (t) => {
  const app = await startHub(t, { maximumReceiveMessageSize: 1024 })
  const client = await connect(t, app)
  const prefix = encodeVarint(2000)

  assert.equal(prefix.length, 2)

  client.send(prefix.subarray(0, 1))
  client.send(prefix.subarray(1))

  assert.deepEqual(await client.nextMessage(), CLOSED_WITH_ERROR)
  await client.closed
})

test('length prefix over five bytes closes', async (t) => {
  const app = await startHub(t)
  const client = await connect(t, app)

  client.send(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x01]))

  assert.deepEqual(await client.nextMessage(), CLOSED_WITH_ERROR)
  await client.closed
})

test('body that is not MessagePack closes', async (t) => {
  const app = await startHub(t)
  const client = await connect(t, app)

  // 0xc1 is the one byte MessagePack never uses.
  client.send(Buffer.concat([encodeVarint(1), Buffer.from([0xc1])]))

  assert.deepEqual(await client.nextMessage(), CLOSED_WITH_ERROR)
  await client.closed
})

test('keep-alive Ping is a binary message', async (t) => {
  const app = await startHub(t, { keepAliveInterval: 100 })
  const client = await connect(t, app)

  assert.deepEqual(await client.nextMessage(), [6])
  assert.equal(client.frames.at(-1)?.binary, true)
})
