import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { RawHubClient, RS } from './helpers/raw-hub.js'
import { connectClient } from './helpers/signalr.js'
import { startInstance } from './helpers/instances.js'

const methods = {
  Echo: (_context: unknown, value: unknown) => value
}

/** Checks that the server still accepts the official client and runs its invocations. */
async function assertServerStillServes (t: TestContext, app: FastifyInstance): Promise<void> {
  const client = await connectClient(app, '/testHub')
  t.after(() => client.stop())
  assert.equal(await client.invoke('Echo', 'still up'), 'still up')
}

/**
 * Sends `request` as the handshake, if any, and checks that the server responds with exactly
 * `{"error": expectedError}` and the separator, then closes the socket.
 */
async function assertHandshakeRejected (t: TestContext, app: FastifyInstance, request: string | undefined, expectedError: string): Promise<void> {
  const client = await RawHubClient.connect(app)
  t.after(() => client.close())
  if (request !== undefined) client.send(request)

  const closed = await client.closed
  assert.deepEqual(client.records, [JSON.stringify({ error: expectedError })])
  assert.equal(closed.code, 1000)
}

test('handshake that is not JSON', async (t) => {
  const app = await startInstance(t, { hub: { methods } })

  await assertHandshakeRejected(t, app, `not json${RS}`, 'An unexpected error occurred during connection handshake.')

  await assertServerStillServes(t, app)
})

test('handshake without protocol property', async (t) => {
  const app = await startInstance(t, { hub: { methods } })

  await assertHandshakeRejected(t, app, `{"version":1}${RS}`, 'An unexpected error occurred during connection handshake.')

  await assertServerStillServes(t, app)
})

test('handshake with unsupported protocol', async (t) => {
  const app = await startInstance(t, { hub: { methods } })

  await assertHandshakeRejected(t, app, `{"protocol":"xml","version":1}${RS}`, "The protocol 'xml' is not supported.")

  await assertServerStillServes(t, app)
})

test('handshake with unsupported version', async (t) => {
  const app = await startInstance(t, { hub: { methods } })

  await assertHandshakeRejected(t, app, `{"protocol":"json","version":3}${RS}`, "The server does not support version 3 of the 'json' protocol.")

  await assertServerStillServes(t, app)
})

test('handshake that never arrives', async (t) => {
  const app = await startInstance(t, { hub: { methods, handshakeTimeout: 200 } })
  const started = Date.now()

  await assertHandshakeRejected(t, app, undefined, 'Handshake was canceled.')

  assert.ok(Date.now() - started >= 200, 'the server waited for the handshake timeout')
  await assertServerStillServes(t, app)
})

test('handshake that stops halfway', async (t) => {
  const app = await startInstance(t, { hub: { methods, handshakeTimeout: 200 } })

  await assertHandshakeRejected(t, app, '{"protocol":"json",', 'Handshake was canceled.')

  await assertServerStillServes(t, app)
})
