import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import fastifyWebsocket from '@fastify/websocket'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import { backplane, hub } from '../src/index.js'
import type { HubConnectionContext, HubOptions } from '../src/index.js'
import { addressKey, TokenBucket } from '../src/hub/limits.js'
import { startInstance } from './helpers/instances.js'
import { RawHubClient } from './helpers/raw-hub.js'
import { baseUrl, connectClient } from './helpers/signalr.js'
import { requestUpgrade } from './helpers/upgrade.js'

const methods = {
  Echo: (_context: HubConnectionContext, value: unknown) => value,
  Join: async (context: HubConnectionContext, group: string) => { await context.groups.add(group) },
  Leave: async (context: HubConnectionContext, group: string) => { await context.groups.remove(group) },
  Collect: async (_context: HubConnectionContext, ...streams: Array<AsyncIterable<unknown>>) => {
    const items: unknown[][] = []
    for (const stream of streams) {
      const collected: unknown[] = []
      for await (const item of stream) collected.push(item)
      items.push(collected)
    }
    return items
  }
}

async function startHub (t: TestContext, options: Partial<HubOptions>): Promise<FastifyInstance> {
  return await startInstance(t, { hub: { methods, ...options } })
}

async function connectRaw (t: TestContext, app: FastifyInstance): Promise<RawHubClient> {
  const client = await RawHubClient.connectAndHandshake(app)
  t.after(() => client.close())
  return client
}

/** Connects an official client and checks that it round-trips, to show a limit left it alone. */
async function connectBystander (t: TestContext, app: FastifyInstance): Promise<{ check: (label: string) => Promise<void> }> {
  const client = await connectClient(app, '/testHub')
  t.after(() => client.stop())
  return {
    check: async (label) => { assert.equal(await client.invoke('Echo', label), label, `the bystander round-trips ${label}`) }
  }
}

function echo (invocationId: string): object {
  return { type: 1, invocationId, target: 'Echo', arguments: [invocationId] }
}

function hubUrl (app: FastifyInstance): string {
  return baseUrl(app).replace(/^http/, 'ws') + '/testHub'
}

/** Requests upgrades until one succeeds, because a closed socket is released asynchronously. */
async function upgradeEventually (url: string, headers: Record<string, string> = {}): Promise<number> {
  const deadline = Date.now() + 5000
  for (;;) {
    const { status } = await requestUpgrade(url, headers)
    if (status === 101 || Date.now() > deadline) return status
    await delay(20)
  }
}

const RATE_LIMITED = (target: string, rate: number): string =>
  `Failed to invoke '${target}'. FST_BACKPLANE_RATE_LIMITED: The connection exceeded ${rate} invocations per second, the hub's maximumInvocationsPerSecond limit. Wait before invoking again.`

test('rate limit rejects excess invocation', async (t) => {
  const app = await startHub(t, { maximumInvocationsPerSecond: 5 })
  const bystander = await connectBystander(t, app)
  const client = await connectRaw(t, app)

  // In one frame, so that the bucket cannot refill in between.
  client.sendMessages(...['1', '2', '3', '4', '5', '6'].map(echo))

  const replies = []
  for (let index = 0; index < 6; index++) replies.push(await client.nextMessage())
  assert.deepEqual(replies[0], { type: 3, invocationId: '6', error: RATE_LIMITED('Echo', 5) })
  assert.deepEqual(replies.slice(1).map((reply) => reply.invocationId), ['1', '2', '3', '4', '5'])
  await bystander.check('after the rejection')

  // One token comes back every 200 ms.
  await delay(300)
  client.sendMessages(echo('7'))
  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: '7', result: '7' })
})

test('repeated rate limit abuse closes', async (t) => {
  let closeError: (Error & { code?: string }) | undefined
  const app = await startHub(t, {
    maximumInvocationsPerSecond: 5,
    maximumRateLimitedInvocations: 3,
    onDisconnected: (_context, error) => { closeError = error }
  })
  const bystander = await connectBystander(t, app)
  const client = await connectRaw(t, app)

  client.sendMessages(...['1', '2', '3', '4', '5', '6', '7', '8', '9'].map(echo))

  const closed = await client.closed
  assert.equal(closed.code, 1008)
  assert.equal(closed.reason, 'FST_BACKPLANE_RATE_LIMIT_CLOSED')
  // The first record is the handshake response.
  const messages = client.records.slice(1).map((record) => JSON.parse(record) as Record<string, unknown>)
  assert.equal(messages.length, 4)
  assert.deepEqual(messages.slice(0, 3).map((message) => message.invocationId), ['6', '7', '8'])
  assert.deepEqual(messages.at(-1), {
    type: 7,
    error: 'Connection closed with an error. FST_BACKPLANE_RATE_LIMIT_CLOSED: The connection sent 4 invocations over its limit of 5 per second without pausing, so the server closed it. Send fewer invocations, then reconnect.'
  })
  await bystander.check('after the close')
  assert.equal(closeError?.code, 'FST_BACKPLANE_RATE_LIMIT_CLOSED')
})

test('rate limit count resets after pause', async (t) => {
  const app = await startHub(t, { maximumInvocationsPerSecond: 10, maximumRateLimitedInvocations: 2 })
  const client = await connectRaw(t, app)
  const burst = (round: string): object[] => Array.from({ length: 12 }, (_value, index) => echo(`${round}-${index}`))

  client.sendMessages(...burst('a'))
  for (let index = 0; index < 12; index++) await client.nextMessage()
  // A full refill takes one second; it resets the count of rejected invocations.
  await delay(1100)
  client.sendMessages(...burst('b'))
  for (let index = 0; index < 12; index++) await client.nextMessage()

  await delay(1100)
  client.sendMessages(echo('last'))
  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: 'last', result: 'last' })
})

test('token bucket refills at its rate', () => {
  const bucket = new TokenBucket(10, 2, 0)

  assert.equal(bucket.take(0), true)
  assert.equal(bucket.take(0), true)
  assert.equal(bucket.take(0), false)
  assert.equal(bucket.take(50), false)
  assert.equal(bucket.take(100), true)
  assert.equal(bucket.isFull(150), false)
  assert.equal(bucket.isFull(300), true)
  assert.equal(bucket.isFull(10_000), true)
})

test('upload stream limit', async (t) => {
  const app = await startHub(t, { maximumUploadStreamsPerClient: 2 })
  const bystander = await connectBystander(t, app)
  const client = await connectRaw(t, app)

  client.sendMessages(
    { type: 1, invocationId: '1', target: 'Collect', arguments: [], streamIds: ['a', 'b'] },
    { type: 1, invocationId: '2', target: 'Collect', arguments: [], streamIds: ['c'] }
  )
  assert.deepEqual(await client.nextMessage(), {
    type: 3,
    invocationId: '2',
    error: "Failed to invoke 'Collect'. FST_BACKPLANE_TOO_MANY_UPLOAD_STREAMS: The invocation opens 1 upload streams while 2 are open, over the limit of 2 per connection (maximumUploadStreamsPerClient). Complete open streams first."
  })
  await bystander.check('after the rejection')

  client.sendMessages(
    { type: 2, invocationId: 'a', item: 1 },
    { type: 3, invocationId: 'a' },
    { type: 2, invocationId: 'b', item: 2 },
    { type: 3, invocationId: 'b' }
  )
  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: '1', result: [[1], [2]] })

  client.sendMessages(
    { type: 1, invocationId: '3', target: 'Collect', arguments: [], streamIds: ['d', 'e'] },
    { type: 2, invocationId: 'd', item: 'x' },
    { type: 3, invocationId: 'd' },
    { type: 3, invocationId: 'e' }
  )
  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: '3', result: [['x'], []] })
})

test('group limit', async (t) => {
  const app = await startHub(t, { maximumGroupsPerClient: 2 })
  const bystander = await connectBystander(t, app)
  const client = await connectClient(app, '/testHub')
  t.after(() => client.stop())

  await client.invoke('Join', 'a')
  await client.invoke('Join', 'b')
  await assert.rejects(client.invoke('Join', 'c'), {
    message: 'An unexpected error occurred invoking \'Join\' on the server. HubException: FST_BACKPLANE_TOO_MANY_GROUPS: Cannot join group "c": the connection is already in 2 groups, the hub\'s maximumGroupsPerClient limit. Leave a group first.'
  })
  await bystander.check('after the rejection')

  // Joining a group again is no new membership, so it passes at the limit.
  await client.invoke('Join', 'a')
  await client.invoke('Leave', 'b')
  await client.invoke('Join', 'c')
  assert.equal(await app.backplane.hubContext().count({ group: 'c' }).then((presence) => presence.connections), 1)
})

test('parallel joins cannot pass group limit', async (t) => {
  const app = await startHub(t, { maximumGroupsPerClient: 3, maximumParallelInvocationsPerClient: 10 })
  const client = await connectClient(app, '/testHub')
  t.after(() => client.stop())

  const outcomes = await Promise.allSettled(['a', 'b', 'c', 'd', 'e', 'f'].map((group) => client.invoke('Join', group)))

  assert.equal(outcomes.filter((outcome) => outcome.status === 'fulfilled').length, 3)
})

test('connection limit per instance', async (t) => {
  const app = await startHub(t, { maximumConnections: 2, handshakeTimeout: 60_000 })
  const first = await connectRaw(t, app)
  // A socket that never sends its handshake still takes a place.
  const silent = await RawHubClient.connect(app)
  t.after(() => silent.close())

  const rejected = await requestUpgrade(hubUrl(app))
  assert.equal(rejected.status, 503)
  const body = rejected.body as { code?: string, message?: string }
  assert.equal(body.code, 'FST_BACKPLANE_TOO_MANY_CONNECTIONS')
  assert.match(body.message ?? '', /already has 2 connections on this instance/)

  first.sendMessages(echo('still'))
  assert.deepEqual(await first.nextMessage(), { type: 3, invocationId: 'still', result: 'still' })

  await silent.close()
  assert.equal(await upgradeEventually(hubUrl(app)), 101)
})

test('rejected upgrade gives its place back', async (t) => {
  const app = await startHub(t, {
    maximumConnections: 1,
    authenticate: (request) => (request.headers.authorization === 'Bearer ok' ? 'ada' : false)
  })
  const ok = { Authorization: 'Bearer ok' }

  // Each rejected upgrade took the only place from the origin check until its socket closed.
  for (let attempt = 0; attempt < 3; attempt++) assert.equal((await requestUpgrade(hubUrl(app))).status, 401)
  const first = await RawHubClient.open(hubUrl(app), ok)
  t.after(() => first.close())
  assert.equal((await requestUpgrade(hubUrl(app), ok)).status, 503)

  // The open connection keeps its place until its WebSocket closes, then gives it back.
  await first.close()
  assert.equal(await upgradeEventually(hubUrl(app), ok), 101)
})

test('connection limit per address', async (t) => {
  const app = Fastify({ trustProxy: true })
  t.after(() => app.close())
  await app.register(backplane)
  await app.register(hub, { path: '/testHub', methods, maximumConnectionsPerIp: 2 })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const from = (address: string): Record<string, string> => ({ 'X-Forwarded-For': address })
  const open = async (address: string): Promise<RawHubClient> => {
    const client = await RawHubClient.open(hubUrl(app), from(address))
    t.after(() => client.close())
    return client
  }

  const first = await open('203.0.113.5')
  await open('203.0.113.5')
  const rejected = await requestUpgrade(hubUrl(app), from('203.0.113.5'))
  assert.equal(rejected.status, 429)
  const body = rejected.body as { code?: string, message?: string }
  assert.equal(body.code, 'FST_BACKPLANE_TOO_MANY_CONNECTIONS_FROM_ADDRESS')
  assert.match(body.message ?? '', /Client address 203\.0\.113\.5 already has 2 connections/)

  // Other addresses are unaffected, and IPv6 addresses count per /64 network.
  assert.equal((await requestUpgrade(hubUrl(app), from('203.0.113.6'))).status, 101)
  await open('2001:db8::1')
  await open('2001:db8::2')
  assert.equal((await requestUpgrade(hubUrl(app), from('2001:db8::3'))).status, 429)
  assert.equal((await requestUpgrade(hubUrl(app), from('2001:db8:0:1::1'))).status, 101)

  // A closed connection gives its address's place back.
  await first.close()
  assert.equal(await upgradeEventually(hubUrl(app), from('203.0.113.5')), 101)

  const bystander = await connectBystander(t, app)
  await bystander.check('after the rejections')
})

test('address keys group IPv6 networks', () => {
  assert.equal(addressKey('203.0.113.5'), '203.0.113.5')
  assert.equal(addressKey('::ffff:203.0.113.5'), '203.0.113.5')
  assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64')
  assert.equal(addressKey('2001:0DB8:0000:0000:ffff::1'), '2001:db8:0:0::/64')
  assert.equal(addressKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64')
  assert.equal(addressKey('::1'), '0:0:0:0::/64')
  assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64')
})

test('id and method name length limits', async (t) => {
  const app = await startInstance(t, { hub: { methods: { Echo: methods.Echo }, maximumInvocationIdLength: 8, maximumMethodNameLength: 4 } })
  const bystander = await connectBystander(t, app)
  const client = await connectRaw(t, app)

  client.sendMessages(echo('12345678'))
  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: '12345678', result: '12345678' })
  client.sendMessages({ type: 1, invocationId: '1', target: 'Echoo', arguments: [] })
  assert.deepEqual(await client.nextMessage(), {
    type: 3,
    invocationId: '1',
    error: "Failed to invoke 'Echoo'. FST_BACKPLANE_METHOD_NAME_TOO_LONG: A method name of 5 characters exceeds the hub's maximumMethodNameLength of 4, so no hub method has it. Check the method name."
  })

  client.sendMessages(echo('123456789'))
  const closed = await client.closed
  assert.equal(closed.code, 1008)
  assert.equal(closed.reason, 'FST_BACKPLANE_ID_TOO_LONG')
  await bystander.check('after the close')
})

test('invalid timing options fail ready', async (t) => {
  const cases: Array<[Partial<HubOptions>, string]> = [
    [{ maximumWriteDelay: -1 }, 'got -1.'],
    [{ maximumWriteDelay: '5' as unknown as number }, 'got "5".'],
    [{ maximumWriteDelay: null as unknown as number }, 'got null.'],
    [{ maximumWriteDelay: Infinity }, 'got Infinity.'],
    [{ keepAliveInterval: '5000' as unknown as number }, 'got "5000".'],
    [{ handshakeTimeout: 0 }, 'got 0.'],
    [{ maximumConnections: [10] as unknown as number }, 'got an array.']
  ]
  for (const [options, shown] of cases) {
    const app = Fastify()
    t.after(() => app.close())
    void app.register(backplane)
    void app.register(hub, { path: '/testHub', ...options })
    const err = await app.ready().then(() => undefined, (error: Error & { code?: string }) => error)
    assert.equal(err?.code, 'FST_BACKPLANE_INVALID_OPTION', JSON.stringify(options))
    assert.ok(err.message.includes(shown), `${err.message} shows the value as ${shown}`)
  }
})

test('invalid limit options fail ready', async (t) => {
  const invalid: Array<Partial<HubOptions>> = [
    { maximumConnections: 0 },
    { maximumConnections: 1.5 },
    { maximumConnections: Infinity },
    { maximumConnectionsPerIp: -1 },
    { maximumInvocationsPerSecond: Number.NaN },
    { maximumGroupsPerClient: '10' as unknown as number },
    { maximumMethodNameLength: 3, methods: { Echo: () => {} } }
  ]
  for (const options of invalid) {
    const app = Fastify()
    t.after(() => app.close())
    void app.register(backplane)
    void app.register(hub, { path: '/testHub', ...options })
    await assert.rejects(async () => { await app.ready() }, { code: 'FST_BACKPLANE_INVALID_OPTION' }, JSON.stringify(options))
  }

  const app = Fastify()
  t.after(() => app.close())
  await app.register(backplane)
  await app.register(hub, { path: '/testHub', maximumConnectionsPerIp: Infinity })
  await app.ready()
})

test('WebSocket message size sets maxPayload', async (t) => {
  const app = await startHub(t, { maximumWebSocketMessageSize: 64 * 1024 })

  assert.equal(app.websocketServer.options.maxPayload, 64 * 1024)
  assert.equal(app.websocketServer.options.perMessageDeflate, false)
})

test('larger app maxPayload is warned about', async (t) => {
  const lines: string[] = []
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { lines.push(line) } } } })
  t.after(() => app.close())
  await app.register(fastifyWebsocket)
  await app.register(backplane)
  await app.register(hub, { path: '/testHub' })
  await app.ready()

  const warnings = lines.map((line) => JSON.parse(line) as { msg: string, maxPayload?: number }).filter((entry) => entry.msg.includes('maxPayload above'))
  assert.equal(warnings.length, 1)
  assert.equal(warnings[0]?.maxPayload, 100 * 1024 * 1024)
})
