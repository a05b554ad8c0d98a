import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { HubConnectionContext } from '../src/index.js'
import { JSON_HANDSHAKE, RawHubClient, RS } from './helpers/raw-hub.js'
import { baseUrl } from './helpers/signalr.js'
import { startInstance } from './helpers/instances.js'

const methods = {
  Echo: (_context: unknown, value: unknown) => value
}

async function startEchoHub (t: TestContext): Promise<FastifyInstance> {
  return await startInstance(t, { hub: { methods } })
}

async function connect (t: TestContext, app: FastifyInstance): Promise<RawHubClient> {
  const client = await RawHubClient.connect(app)
  t.after(() => client.close())
  return client
}

test('handshake split across three frames', async (t) => {
  const app = await startEchoHub(t)
  const client = await connect(t, app)

  client.send('{"protocol":"js')
  client.send('on","version":1}')
  client.send(RS)
  assert.equal(await client.nextRecord(), '{}')

  client.sendMessages({ type: 1, invocationId: '1', target: 'Echo', arguments: ['after'] })
  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: '1', result: 'after' })
})

test('invocation split across three frames', async (t) => {
  const app = await startEchoHub(t)
  const client = await connect(t, app)

  // The first frame completes the handshake and starts the invocation, the second ends
  // inside the invocation's JSON, and the third carries only the separator.
  client.send(JSON_HANDSHAKE + '{"type":1,"invocationId":"7","tar')
  client.send('get":"Echo","arguments":["split"]}')
  assert.equal(await client.nextRecord(), '{}')
  client.send(RS)

  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: '7', result: 'split' })
})

test('handshake and invocation in one frame', async (t) => {
  const app = await startEchoHub(t)
  const client = await connect(t, app)

  client.send(JSON_HANDSHAKE + JSON.stringify({ type: 1, invocationId: '1', target: 'Echo', arguments: ['same frame'] }) + RS)

  assert.equal(await client.nextRecord(), '{}')
  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: '1', result: 'same frame' })
})

test('three invocations in one frame', async (t) => {
  const app = await startEchoHub(t)
  const client = await connect(t, app)
  client.send(JSON_HANDSHAKE)
  assert.equal(await client.nextRecord(), '{}')

  client.sendMessages(
    { type: 1, invocationId: 'a', target: 'Echo', arguments: [1] },
    { type: 1, invocationId: 'b', target: 'Echo', arguments: [2] },
    { type: 1, invocationId: 'c', target: 'Echo', arguments: [3] }
  )

  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: 'a', result: 1 })
  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: 'b', result: 2 })
  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: 'c', result: 3 })
})

test('UTF-8 character split across fragments', async (t) => {
  const app = await startEchoHub(t)
  const client = await connect(t, app)
  client.send(JSON_HANDSHAKE)
  assert.equal(await client.nextRecord(), '{}')

  const text = 'caf\u00e9 \u{1F600}'
  const bytes = Buffer.from(JSON.stringify({ type: 1, invocationId: '1', target: 'Echo', arguments: [text] }) + RS, 'utf8')
  const emoji = bytes.indexOf(Buffer.from('\u{1F600}', 'utf8'))
  assert.notEqual(emoji, -1)

  // One text message in two fragments, split inside the emoji: only the whole message must be
  // valid UTF-8, as RFC 6455 requires.
  client.socket.send(bytes.subarray(0, emoji + 2), { binary: false, fin: false })
  client.socket.send(bytes.subarray(emoji + 2), { binary: false, fin: true })

  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: '1', result: text })
})

test('binary frame on JSON connection closes', async (t) => {
  const app = await startEchoHub(t)
  const client = await connect(t, app)
  client.send(JSON_HANDSHAKE)
  assert.equal(await client.nextRecord(), '{}')

  client.send(Buffer.from(JSON.stringify({ type: 1, invocationId: '1', target: 'Echo', arguments: ['x'] }) + RS, 'utf8'))
  assert.deepEqual(await client.nextMessage(), { type: 7, error: 'Connection closed with an error.', allowReconnect: true })
  const { code, reason } = await client.closed
  assert.equal(code, 1003)
  assert.equal(reason, 'FST_BACKPLANE_UNSUPPORTED_FRAME_TYPE')
})

test('JSON replies use text frames', async (t) => {
  const app = await startInstance(t, { hub: { methods, keepAliveInterval: 100 } })
  const client = await connect(t, app)
  client.send(JSON_HANDSHAKE)
  assert.equal(await client.nextRecord(), '{}')

  client.sendMessages({ type: 1, invocationId: '1', target: 'Echo', arguments: ['text'] })
  await app.broadcast('news', ['text'])
  const received: string[] = []
  while (received.length < 3) {
    const record = await client.nextRecord()
    // Pings may come in between, but only the first one counts.
    if (record !== '{"type":6}' || !received.includes(record)) received.push(record)
  }

  assert.deepEqual(received.sort(), [
    '{"type":1,"target":"news","arguments":["text"]}',
    '{"type":3,"invocationId":"1","result":"text"}',
    '{"type":6}'
  ])
  assert.equal(client.binaryFrames, 0)
})

test('records of one pass share one message', async (t) => {
  const app = await startInstance(t, {
    hub: {
      methods: {
        Burst (context: HubConnectionContext) {
          for (const step of [1, 2, 3]) void context.clients.caller.send('step', step)
          return 'done'
        }
      }
    }
  })
  const client = await connect(t, app)
  client.send(JSON_HANDSHAKE)
  assert.equal(await client.nextRecord(), '{}')
  const before = client.messagesReceived

  client.sendMessages({ type: 1, invocationId: '1', target: 'Burst', arguments: [] })
  const records = [await client.nextRecord(), await client.nextRecord(), await client.nextRecord(), await client.nextRecord()]
  assert.deepEqual(records, [
    '{"type":1,"target":"step","arguments":[1]}',
    '{"type":1,"target":"step","arguments":[2]}',
    '{"type":1,"target":"step","arguments":[3]}',
    '{"type":3,"invocationId":"1","result":"done"}'
  ])
  assert.equal(client.messagesReceived - before, 1, 'the four records arrive in one WebSocket message')
})

test('plain GET on hub path gets 400', async (t) => {
  const app = await startEchoHub(t)

  const response = await fetch(baseUrl(app) + '/testHub')

  assert.equal(response.status, 400)
  const body = await response.json() as { code?: string }
  assert.equal(body.code, 'FST_BACKPLANE_WEBSOCKETS_ONLY')
})
