import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { jsonHubProtocol, MessageType } from '../src/index.js'
import type { HubMessage, HubProtocol } from '../src/index.js'
import { RawHubClient } from './helpers/raw-hub.js'
import { startInstance } from './helpers/instances.js'
import { connectAdmin } from './helpers/redis-admin.js'
import { startRedisServer } from './helpers/redis-server.js'
import type { RedisServer } from './helpers/redis-server.js'

const TARGET = 'countedNews'
const CONNECTIONS_PER_INSTANCE = 50

/** Wraps jsonHubProtocol under the same name and counts the Invocations of TARGET that it encodes. */
function countingProtocol (): HubProtocol & { encoded: number } {
  return {
    ...jsonHubProtocol,
    encoded: 0,
    writeMessage (message: HubMessage): Buffer {
      if (message.type === MessageType.Invocation && message.target === TARGET) this.encoded++
      return jsonHubProtocol.writeMessage(message)
    }
  }
}

async function connectMany (t: TestContext, app: FastifyInstance, count: number): Promise<RawHubClient[]> {
  const clients = await Promise.all(Array.from({ length: count }, () => RawHubClient.connectAndHandshake(app)))
  t.after(() => Promise.all(clients.map((client) => client.close())))
  return clients
}

test('broadcast encodes once per instance', async (t) => {
  const redis = await startRedisServer()
  t.after(() => redis.stop())

  const protocolA = countingProtocol()
  const protocolB = countingProtocol()
  const a = await startInstance(t, { backplane: { redis: redis.url }, hub: { protocols: [protocolA] } })
  const b = await startInstance(t, { backplane: { redis: redis.url }, hub: { protocols: [protocolB] } })
  const clients = [
    ...await connectMany(t, a, CONNECTIONS_PER_INSTANCE),
    ...await connectMany(t, b, CONNECTIONS_PER_INSTANCE)
  ]

  await a.broadcast(TARGET, ['once'])

  const expected = JSON.stringify({ type: MessageType.Invocation, target: TARGET, arguments: ['once'] })
  const received = await Promise.all(clients.map((client) => client.nextRecord()))
  assert.deepEqual(received, clients.map(() => expected))
  assert.equal(protocolA.encoded, 1, 'encodings on the sending instance')
  assert.equal(protocolB.encoded, 0, 'encodings on the receiving instance')
})

test('publishes of one tick pipelined', async (t) => {
  const redis = await startRedisServer()
  t.after(() => redis.stop())
  const admin = await connectAdmin(t, redis)
  const count = 200
  for (const redisOption of ['url', 'client'] as const) {
    await assertPipelined(t, redis, admin, redisOption, count)
  }
})

/** Broadcasts `count` times in one tick and counts the reads redis-server needed for them. */
async function assertPipelined (t: TestContext, redis: RedisServer, admin: Redis, redisOption: 'url' | 'client', count: number): Promise<void> {
  // The plugin batches the publishes itself, so an app's own client gets the same treatment.
  let option: string | Redis = redis.url
  if (redisOption === 'client') {
    const client = new Redis({ host: '127.0.0.1', port: redis.port })
    t.after(() => { client.disconnect() })
    option = client
  }
  const app = await startInstance(t, { backplane: { redis: option, healthCheckInterval: 60_000 } })

  const readsBefore = await readsProcessed(admin)
  await Promise.all(Array.from({ length: count }, (_, index) => app.broadcast('pipelined', [index])))
  const reads = await readsProcessed(admin) - readsBefore

  // The admin's INFO commands take a read each, and 200 PUBLISH commands of about 80 bytes sent
  // in one write fit in a few reads. Sent one write at a time, they take about one read each.
  assert.ok(reads <= 8, `redis-server processed ${reads} reads for ${count} publishes with the ${redisOption} option`)
}

async function readsProcessed (admin: Redis): Promise<number> {
  const stats = await admin.info('stats')
  const match = /^total_reads_processed:(\d+)/m.exec(stats)
  assert.ok(match !== null, 'INFO stats reports total_reads_processed')
  return Number(match[1])
}
