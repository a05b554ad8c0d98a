import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { startInstance } from './helpers/instances.js'
import { RawHubClient } from './helpers/raw-hub.js'
import { startRedisServer } from './helpers/redis-server.js'
import type { RedisServer } from './helpers/redis-server.js'
import { Received } from './helpers/signalr.js'
import { startTcpFront } from './helpers/tcp-front.js'

const HUB = '/testHub'
const allChannel = `fastify-backplane:${HUB.length}:${HUB}:all`

/** Polls `condition` every 20 ms until it holds; fails after `timeout` ms. */
async function eventually (condition: () => boolean | Promise<boolean>, timeout: number, what: string): Promise<void> {
  const deadline = Date.now() + timeout
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeout} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** Broadcasts from `from` until `client` receives one, proving that the path works again. */
async function assertDelivers (from: FastifyInstance, client: RawHubClient, tag: string): Promise<void> {
  let attempt = 0
  await eventually(async () => {
    await from.broadcast('probe', [`${tag}-${attempt++}`]).catch(() => {})
    await new Promise((resolve) => setTimeout(resolve, 50))
    return client.records.some((record) => record.includes(`"${tag}-`))
  }, 20_000, `delivery of ${tag}`)
}

async function twoInstances (t: TestContext, redis: RedisServer, logLines?: string[]): Promise<[FastifyInstance, FastifyInstance]> {
  const options = { redis: redis.url, healthCheckInterval: 200 }
  return [
    await startInstance(t, { backplane: options, ...(logLines === undefined ? {} : { logLines }) }),
    await startInstance(t, { backplane: options })
  ]
}

test('Redis restarts several times', async (t) => {
  const redis = await startRedisServer()
  t.after(() => redis.stop())
  const [a, b] = await twoInstances(t, redis)
  const onA = await RawHubClient.connectAndHandshake(a)
  const onB = await RawHubClient.connectAndHandshake(b)
  t.after(() => { onA.socket.terminate(); onB.socket.terminate() })

  for (let round = 0; round < 3; round++) {
    await redis.stop()
    // While Redis is down, local delivery goes on and remote delivery fails fast with a code.
    await assert.rejects(a.broadcast('local', [`down-${round}`]), { code: 'FST_BACKPLANE_PUBLISH_FAILED' })
    await eventually(() => onA.records.some((record) => record.includes(`down-${round}`)), 5000, 'local delivery during the outage')
    assert.equal(a.backplane.health().state, 'reconnecting')

    await redis.restart()
    await assertDelivers(a, onB, `a-to-b-${round}`)
    await assertDelivers(b, onA, `b-to-a-${round}`)
  }
  await eventually(() => a.backplane.health().healthy && b.backplane.health().healthy, 5000, 'healthy after the restarts')
})

test('outage leaves no stale probe', async (t) => {
  const redis = await startRedisServer()
  t.after(() => redis.stop())
  const logLines: string[] = []
  const [a] = await twoInstances(t, redis, logLines)
  await eventually(() => a.backplane.health().healthy, 5000, 'healthy at start')

  // Five health checks fall into the outage, and their probes cannot reach Redis.
  await redis.stop()
  await new Promise((resolve) => setTimeout(resolve, 1000))
  await redis.restart()
  await eventually(() => a.backplane.health().healthy, 10_000, 'healthy after the restart')
  // Ten more checks, in which a probe left over from the outage would have timed out.
  await new Promise((resolve) => setTimeout(resolve, 2000))

  const timeouts = logLines.filter((line) => line.includes('health check timed out'))
  assert.deepEqual(timeouts, [], 'no reconnect after Redis came back by itself')
  assert.equal(a.backplane.health().failedProbes, 0)
  assert.equal(a.backplane.health().state, 'connected')
})

test('frozen Redis trips the health check', async (t) => {
  const redis = await startRedisServer()
  t.after(() => { redis.resume(); return redis.stop() })
  const logLines: string[] = []
  const [a, b] = await twoInstances(t, redis, logLines)
  const onB = await RawHubClient.connectAndHandshake(b)
  t.after(() => onB.socket.terminate())
  await assertDelivers(a, onB, 'before')

  redis.pause()
  await eventually(() => a.backplane.health().failedProbes > 0, 10_000, 'a failed probe')
  assert.equal(a.backplane.health().healthy, false)
  assert.ok(logLines.some((line) => line.includes('health check timed out')), 'the timeout is logged')

  redis.resume()
  await assertDelivers(a, onB, 'after')
  await eventually(() => a.backplane.health().healthy, 10_000, 'healthy again')
  assert.ok(logLines.some((line) => line.includes('health check recovered')), 'the recovery is logged')
})

test('Redis drops a slow subscriber', async (t) => {
  const redis = await startRedisServer(['--client-output-buffer-limit', 'pubsub 64kb 32kb 1'])
  t.after(() => redis.stop())
  const logLines: string[] = []
  const [a, b] = await twoInstances(t, redis, logLines)
  const onA = await RawHubClient.connectAndHandshake(a)
  t.after(() => onA.socket.terminate())

  // Another process floods a channel that A subscribes to while spawnSync blocks this process,
  // so A reads nothing. Once the kernel's socket buffers are full, Redis's output buffer for
  // A's subscriber passes 64 KB and Redis closes that connection. The flood ends with a PING,
  // whose reply proves that Redis processed every PUBLISH before it.
  const flood = spawnSync(process.execPath, ['-e', `
    const net = require('node:net')
    const socket = net.createConnection(${redis.port}, '127.0.0.1', () => {
      const payload = 'x'.repeat(16384)
      const command = '*3\\r\\n$7\\r\\nPUBLISH\\r\\n$${allChannel.length}\\r\\n${allChannel}\\r\\n$16384\\r\\n' + payload + '\\r\\n'
      for (let i = 0; i < 1500; i++) socket.write(command)
      socket.write('*1\\r\\n$4\\r\\nPING\\r\\n')
    })
    let replies = ''
    socket.on('data', (chunk) => {
      replies += chunk
      if (replies.includes('+PONG')) socket.end()
    })
  `], { timeout: 30_000 })
  assert.equal(flood.status, 0, 'the flood finished')

  await eventually(() => logLines.some((line) => line.includes('subscriber connection closed')), 10_000, 'the closed subscriber logged')
  await eventually(() => logLines.some((line) => line.includes('reconnected and resubscribed')), 10_000, 'the recovery logged')
  await assertDelivers(b, onA, 'after-drop')
})

test('slow reader is closed alone', async (t) => {
  const logLines: string[] = []
  const app = await startInstance(t, { hub: { maximumOutgoingBufferSize: 64 * 1024 }, logLines })
  const slow = await RawHubClient.connectAndHandshake(app)
  const healthy = await RawHubClient.connectAndHandshake(app)
  t.after(() => { slow.socket.terminate(); healthy.socket.terminate() })

  // The slow client's TCP socket stops reading, so the server's send buffer for it fills up.
  const underlying = (slow.socket as unknown as { _socket: { pause: () => void, resume: () => void } })._socket
  underlying.pause()

  // 20 MB in all, more than the kernel's socket buffers on loopback can absorb.
  const payload = 'x'.repeat(4096)
  const count = 5000
  for (let index = 0; index < count; index++) {
    await app.broadcast('bulk', [index, payload])
    if (index % 50 === 49) await new Promise((resolve) => setImmediate(resolve))
  }
  const closedLines = logLines.filter((line) => line.includes('does not read fast enough'))
  assert.equal(closedLines.length, 1, 'the server closed one connection, the slow one')
  assert.equal(JSON.parse(closedLines[0]!).err.code, 'FST_BACKPLANE_SLOW_CLIENT')

  // If it reads again within the grace period, the slow client finds a Close that lets it
  // reconnect, then the end of the connection.
  underlying.resume()
  await slow.closed
  const close = slow.records.find((record) => record.startsWith('{"type":7'))
  assert.ok(close !== undefined, 'the slow client received a Close message')
  assert.equal(JSON.parse(close).allowReconnect, true)
  assert.ok(slow.records.filter((record) => record.includes('"bulk"')).length < count, 'the slow client did not get everything queued')
  await eventually(() => healthy.records.filter((record) => record.includes('"bulk"')).length === count, 20_000, 'every message at the healthy client')
})

test('mass disconnect then reconnect', async (t) => {
  const app = await startInstance(t)
  const first = await Promise.all(Array.from({ length: 300 }, () => RawHubClient.connectAndHandshake(app)))
  assert.equal((await app.backplane.hubContext().count()).connections, 300)
  for (const client of first) client.socket.terminate()
  await eventually(async () => (await app.backplane.hubContext().count()).connections === 0, 10_000, 'all 300 gone')

  const second = await Promise.all(Array.from({ length: 50 }, () => RawHubClient.connectAndHandshake(app)))
  t.after(() => { for (const client of second) client.socket.terminate() })
  await app.broadcast('hello', ['again'])
  await eventually(() => second.every((client) => client.records.some((record) => record.includes('again'))), 10_000, 'delivery to the new clients')
})

test('shutdown moves clients to another instance', async (t) => {
  const redis = await startRedisServer()
  t.after(() => redis.stop())
  const [a, b] = await twoInstances(t, redis)
  const live = new Set([a, b])
  const ports = new Map([a, b].map((app) => [app, (app.server.address() as { port: number }).port]))
  const front = await startTcpFront(() => [...live].map((app) => ports.get(app)!))
  t.after(() => front.close())

  const clients = await Promise.all(Array.from({ length: 4 }, async () => {
    const connection = new HubConnectionBuilder()
      .withUrl(front.url + HUB, { skipNegotiation: true, transport: HttpTransportType.WebSockets })
      .withAutomaticReconnect([0, 100, 200, 400, 800, 1000, 1000, 1000])
      .configureLogging(LogLevel.None)
      .build()
    const received = new Received(connection, 'after')
    let reconnected = false
    connection.onreconnected(() => { reconnected = true })
    await connection.start()
    t.after(() => connection.stop())
    return { connection, received, reconnected: () => reconnected }
  }))
  assert.deepEqual(await b.backplane.hubContext().count(), { connections: 4, instances: 2, complete: true }, 'four clients over two instances')
  assert.equal((await a.backplane.hubContext().count()).connections, 4)

  // Traffic flows while A shuts down.
  let flowing = true
  const traffic = (async () => {
    for (let index = 0; flowing && index < 2000; index++) {
      await b.broadcast('during', [index]).catch(() => {})
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  })()
  live.delete(a)
  await a.close()
  await eventually(async () => (await b.backplane.hubContext().count()).connections === 4, 15_000, 'all four clients on B')
  flowing = false
  await traffic

  await b.broadcast('after', ['still here'])
  for (const client of clients) assert.deepEqual(await client.received.waitFor(1), [['still here']])
  assert.equal(clients.filter((client) => client.reconnected()).length, 2, 'the two clients of A reconnected')

  // Clients first: closing B first would send them reconnecting through the front for seconds.
  await Promise.all(clients.map((client) => client.connection.stop()))
  await front.close()
})
