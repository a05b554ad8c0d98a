import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { InProcessBus } from '../src/index.js'
import type { HubConnectionContext } from '../src/index.js'
import { startInstance } from './helpers/instances.js'
import { startRedisServer } from './helpers/redis-server.js'
import { connectClient, Received } from './helpers/signalr.js'

const COUNT = 500

/**
 * Fires COUNT broadcasts from `a` without awaiting each, then checks that a client on each
 * instance received every one exactly once and in order.
 *
 * A fence message published after the last broadcast proves that nothing else is on its way.
 * Each client waits for the fence that the other instance sent, because that fence travels
 * through the transport behind every earlier message, including any echo of `a`'s broadcasts.
 */
async function assertExactlyOnceInOrder (t: TestContext, a: FastifyInstance, b: FastifyInstance): Promise<void> {
  const clientA = await connectClient(a, '/testHub')
  const clientB = await connectClient(b, '/testHub')
  t.after(() => clientA.stop())
  t.after(() => clientB.stop())

  const sequenceA = new Received<[number]>(clientA, 'sequence')
  const sequenceB = new Received<[number]>(clientB, 'sequence')
  const fenceA = new Received<[string]>(clientA, 'fence')
  const fenceB = new Received<[string]>(clientB, 'fence')

  const sends: Array<Promise<void>> = []
  for (let i = 0; i < COUNT; i++) sends.push(a.broadcast('sequence', [i]))
  await Promise.all(sends)

  await a.broadcast('fence', ['from A'])
  await b.broadcast('fence', ['from B'])
  await fenceA.waitFor(2)
  await fenceB.waitFor(2)

  const expected = Array.from({ length: COUNT }, (_, i) => [i])
  assert.deepEqual(sequenceA.calls, expected, 'client on the sending instance')
  assert.deepEqual(sequenceB.calls, expected, 'client on the other instance')
}

test('Redis transport delivers once, in order', async (t) => {
  const redis = await startRedisServer()
  t.after(() => redis.stop())

  const a = await startInstance(t, { backplane: { redis: redis.url } })
  const b = await startInstance(t, { backplane: { redis: redis.url } })
  assert.equal(a.backplane.transport, 'redis')

  await assertExactlyOnceInOrder(t, a, b)
})

test('shared InProcessBus delivers once, in order', async (t) => {
  const bus = new InProcessBus()
  const a = await startInstance(t, { backplane: { inProcessBus: bus } })
  const b = await startInstance(t, { backplane: { inProcessBus: bus } })
  assert.equal(a.backplane.transport, 'in-process')

  await assertExactlyOnceInOrder(t, a, b)
})

const groupMethods = {
  JoinGroup: async (context: HubConnectionContext, group: string) => {
    await context.groups.add(group)
  }
}

test('group list broadcast arrives once', async (t) => {
  const redis = await startRedisServer()
  t.after(() => redis.stop())
  const a = await startInstance(t, { backplane: { redis: redis.url }, hub: { methods: groupMethods } })
  const b = await startInstance(t, { backplane: { redis: redis.url }, hub: { methods: groupMethods } })

  const clients = [await connectClient(a, '/testHub'), await connectClient(b, '/testHub')]
  const news = clients.map((client) => new Received(client, 'news'))
  const fences = clients.map((client) => new Received(client, 'fence'))
  for (const client of clients) {
    t.after(() => client.stop())
    await client.invoke('JoinGroup', 'red')
    await client.invoke('JoinGroup', 'blue')
  }

  // The message goes out on both group channels, and each instance is subscribed to both.
  await a.broadcast('news', ['to both groups'], { group: ['red', 'blue'] })
  await a.broadcast('fence', ['from A'])
  await b.broadcast('fence', ['from B'])

  for (const [index, client] of ['on A', 'on B'].entries()) {
    await fences[index]!.waitFor(2)
    assert.deepEqual(news[index]!.calls, [['to both groups']], `client ${client}`)
  }
})

test('restarted instance id still delivers', async (t) => {
  // An app may set instanceId to a stable name such as its dyno name, which a restarted
  // process reuses while the other instances keep running.
  const redis = await startRedisServer()
  t.after(() => redis.stop())
  const b = await startInstance(t, { backplane: { redis: redis.url }, hub: { methods: groupMethods } })
  const client = await connectClient(b, '/testHub')
  t.after(() => client.stop())
  await client.invoke('JoinGroup', 'red')
  await client.invoke('JoinGroup', 'blue')
  const received = new Received<[string]>(client, 'news')
  const fence = new Received(client, 'fence')

  const firstLife = await startInstance(t, { backplane: { redis: redis.url, instanceId: 'web.1' } })
  await firstLife.broadcast('news', ['first life'], { group: ['red', 'blue'] })
  await received.waitFor(1)
  await firstLife.close()

  const secondLife = await startInstance(t, { backplane: { redis: redis.url, instanceId: 'web.1' } })
  await secondLife.broadcast('news', ['second life'], { group: ['red', 'blue'] })
  // The fence travels behind the group broadcast, so once it arrives nothing else is coming.
  await secondLife.broadcast('fence', [])
  await fence.waitFor(1)

  assert.deepEqual(received.calls, [['first life'], ['second life']])
})
