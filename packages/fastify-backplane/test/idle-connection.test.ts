import assert from 'node:assert/strict'
import type { AddressInfo, Socket } from 'node:net'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { test } from 'node:test'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { FastifyRequest } from 'fastify'
import type { HubConnectionContext } from '../src/index.js'
import { startInstance } from './helpers/instances.js'
import { encodeFrame, Opcode, RawFrameClient } from './helpers/raw-frames.js'
import { JSON_HANDSHAKE, RawHubClient, RS } from './helpers/raw-hub.js'
import { collectProcessErrors } from './helpers/process-errors.js'
import { baseUrl, connectClient } from './helpers/signalr.js'
import { requestUpgrade } from './helpers/upgrade.js'
import { deferred, within } from './helpers/promises.js'

// What an open connection keeps is most of a busy hub's memory, so these tests check that it
// keeps no more than it needs: not the upgrade request, and no listener that references it. The hub
// route replaces @fastify/websocket's error listener with its own, so they also check that every
// socket still has one.

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/** Runs full collections until `ref` is cleared, or gives up after a few rounds. */
async function collected (ref: WeakRef<object>): Promise<boolean> {
  for (let round = 0; round < 10 && ref.deref() !== undefined; round++) {
    // WeakRefs hold their target until the current job ends, so each round waits a turn.
    await nextTurn()
    gc()
  }
  return ref.deref() === undefined
}

test('connection drops its upgrade request', async (t) => {
  let request: WeakRef<FastifyRequest> | undefined
  let rawRequest: WeakRef<object> | undefined
  const app = await startInstance(t, {
    hub: {
      onConnected: (context: HubConnectionContext, upgrade: FastifyRequest) => {
        request = new WeakRef(upgrade)
        rawRequest = new WeakRef(upgrade.raw)
        context.items.set('room', (upgrade.query as { room?: string }).room)
      },
      methods: {
        Room: (context: HubConnectionContext) => context.items.get('room'),
        HasRequest: (context: HubConnectionContext) => 'request' in context
      }
    }
  })

  const client = await RawHubClient.open(`${baseUrl(app).replace(/^http/, 'ws')}/testHub?room=lobby`)
  t.after(() => client.close())
  client.send(JSON_HANDSHAKE)
  assert.equal(await client.nextRecord(), '{}')
  client.sendMessages(
    { type: 1, invocationId: '1', target: 'Room', arguments: [] },
    { type: 1, invocationId: '2', target: 'HasRequest', arguments: [] }
  )
  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: '1', result: 'lobby' })
  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: '2', result: false })

  // Neither the Fastify request nor Node's IncomingMessage under it, which the upgrade's
  // ServerResponse refers to, may outlive onConnected while the socket stays open.
  assert.ok(await collected(request!), 'the Fastify request was collected')
  assert.ok(await collected(rawRequest!), 'the IncomingMessage was collected')

  client.sendMessages({ type: 1, invocationId: '3', target: 'Room', arguments: [] })
  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: '3', result: 'lobby' })
})

test('idle socket has one close listener', async (t) => {
  const app = await startInstance(t, { hub: { maximumConnectionsPerIp: 10 } })
  const clients = [await RawHubClient.connect(app), await RawHubClient.connectAndHandshake(app)]
  t.after(() => Promise.all(clients.map((client) => client.close())))

  // Only ws's own listener stays. The hub releases the connection's place from the WebSocket's
  // close, so an idle socket needs no array of listeners.
  const sockets = [...app.websocketServer.clients].map((socket) => (socket as unknown as { _socket: Socket })._socket)
  assert.equal(sockets.length, 2)
  for (const socket of sockets) assert.equal(socket.listenerCount('close'), 1)
})

test('broken frame logged with connection id', async (t) => {
  const logLines: string[] = []
  const app = await startInstance(t, { logLines, hub: { methods: { Echo: (_context: HubConnectionContext, value: unknown) => value } } })
  const bystander = await connectClient(app, '/testHub')
  t.after(() => bystander.stop())

  const client = await RawFrameClient.open((app.server.address() as AddressInfo).port, '/testHub')
  t.after(() => client.destroy())
  client.send({ opcode: Opcode.Text, payload: JSON_HANDSHAKE })
  const [handshake] = await client.waitForFrames(1)
  assert.equal(handshake?.payload.toString('utf8'), '{}' + RS)
  // A client must mask its frames; ws fails the connection with 1002 when one is not.
  client.write(encodeFrame({ opcode: Opcode.Text, payload: Buffer.from('{"type":6}' + RS), masked: false }))
  assert.equal((await client.closed).code, 1002)

  const failures = logLines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.msg === 'hub WebSocket failed')
  assert.equal(failures.length, 1)
  const [failure] = failures as Array<{ level: number, connectionId?: unknown, reqId?: unknown, err: { code?: string } }>
  assert.equal(failure!.level, 30, 'logged at info level, because the client caused it')
  assert.equal(failure!.err.code, 'WS_ERR_EXPECTED_MASK')
  assert.equal(typeof failure!.connectionId, 'string')
  assert.equal(typeof failure!.reqId, 'string')

  assert.equal(await bystander.invoke('Echo', 'still here'), 'still here')
})

test('upgrades during shutdown let close finish', async (t) => {
  const errors = collectProcessErrors(t, { uncaught: true })
  const authenticating = deferred()
  const admitted = deferred()
  const released = deferred()
  const app = await startInstance(t, {
    hub: {
      // The hub waits up to half of this for running invocations before it closes connections.
      closeTimeout: 20_000,
      authenticate: async (request) => {
        if ((request.query as { wait?: string }).wait === undefined) return undefined
        authenticating.resolve()
        await admitted.promise
        return undefined
      },
      methods: { Hold: async () => await released.promise }
    }
  })
  const url = `${baseUrl(app).replace(/^http/, 'ws')}/testHub`

  // A running invocation keeps the hub closing, and @fastify/websocket's server open, while an
  // upgrade that passed the router waits in authenticate.
  const holder = await connectClient(app, '/testHub')
  const holding = holder.invoke('Hold').catch(() => {})
  const opening = RawFrameClient.open((app.server.address() as AddressInfo).port, '/testHub?wait=1')
  await authenticating.promise
  const closing = app.close()
  // Fastify responds with 503 once it runs its preClose hooks, and the hub's runs first. Those
  // refused sockets must not hold app.close() up.
  const deadline = Date.now() + 10_000
  while ((await requestUpgrade(url)).status !== 503 && Date.now() < deadline) await nextTurn()
  admitted.resolve()

  const client = await opening
  t.after(() => client.destroy())
  // The hub refuses the socket; a frame ws rejects must find an error listener on it.
  client.write(encodeFrame({ opcode: Opcode.Text, payload: Buffer.from(JSON_HANDSHAKE), masked: false }))
  assert.equal((await client.closed).code, 1012)

  released.resolve()
  await within(Promise.all([closing, holding]), 10_000, 'app.close()')
  assert.deepEqual(errors, [])
})
