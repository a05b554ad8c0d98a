import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import { Redis } from 'ioredis'
import type { FastifyInstance } from 'fastify'
import { JSON_HANDSHAKE, RawHubClient } from './helpers/raw-hub.js'
import { startRedisServer } from './helpers/redis-server.js'
import type { RedisServer } from './helpers/redis-server.js'
import { baseUrl } from './helpers/signalr.js'
import { connectTestClient, startInstances, waitForTag } from './helpers/scale-out.js'

const prefix = 'fastify-backplane:'
const hub = '/testHub'
const groupChannel = (group: string): string => `${prefix}${hub.length}:${hub}:group:${group}`
const allChannel = `${prefix}${hub.length}:${hub}:all`

type SubscriberCount = (channel: string) => Promise<number>

/** Starts a redis-server for the test and a separate connection that reads its PUBSUB NUMSUB. */
async function startObservedRedis (t: TestContext): Promise<{ redis: RedisServer, observer: Redis, numsub: SubscriberCount }> {
  const redis = await startRedisServer()
  t.after(() => redis.stop())
  const observer = new Redis(redis.port, '127.0.0.1')
  t.after(() => observer.disconnect())
  const numsub = async (channel: string): Promise<number> => Number((await observer.pubsub('NUMSUB', channel) as [string, number])[1])
  return { redis, observer, numsub }
}

/** Polls until `channel` has `count` subscribers, failing with `message` after 10 s. */
async function waitForSubscribers (numsub: SubscriberCount, channel: string, count: number, message: string): Promise<void> {
  const deadline = Date.now() + 10_000
  while (await numsub(channel) !== count) {
    assert.ok(Date.now() < deadline, message)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

test('remote group add and remove', async (t) => {
  const redis = await startRedisServer()
  t.after(() => redis.stop())
  const [a, b] = await startInstances(t, 2, () => ({ redis: redis.url })) as [FastifyInstance, FastifyInstance]
  const onB = await connectTestClient(t, b, 'onB', undefined)

  await a.backplane.hubContext().groups.add(onB.id, 'remote')
  await a.broadcast('m', ['joined'], { group: 'remote' })
  await waitForTag([onB], 'joined')

  await a.backplane.hubContext().groups.remove(onB.id, 'remote')
  await a.broadcast('m', ['left'], { group: 'remote' })
  await a.broadcast('m', ['marker'])
  await waitForTag([onB], 'marker')
  assert.deepEqual(onB.received, ['joined', 'marker'])
})

test('remote group add times out', async (t) => {
  const redis = await startRedisServer()
  t.after(() => redis.stop())
  const [a] = await startInstances(t, 1, () => ({ redis: redis.url, groupCommandTimeout: 300 })) as [FastifyInstance]

  await assert.rejects(
    a.backplane.hubContext().groups.add('no-such-connection', 'g'),
    { code: 'FST_BACKPLANE_CONNECTION_NOT_FOUND' }
  )
})

test('names that mimic other channels', async (t) => {
  const redis = await startRedisServer()
  t.after(() => redis.stop())
  const [a, b] = await startInstances(t, 2, () => ({ redis: redis.url })) as [FastifyInstance, FastifyInstance]

  // Each client belongs to a group, or is a user, whose name looks like another target's channel.
  const tricky = ['user:alice', 'all', 'group:x', '*', 'a b', 'ünï ✓', 'x'.repeat(1024), `${hub.length}:${hub}:all`, 'instance:foo']
  const members = []
  for (const [index, name] of tricky.entries()) {
    members.push(await connectTestClient(t, index % 2 === 0 ? a : b, `group ${index}`, undefined, [name]))
  }
  const alice = await connectTestClient(t, b, 'alice', 'alice')
  const userX = await connectTestClient(t, a, 'user group:x', 'group:x')

  for (const [index, name] of tricky.entries()) await b.broadcast('m', [`g${index}`], { group: name })
  await a.broadcast('m', ['user alice'], { user: 'alice' })
  await a.broadcast('m', ['user group:x'], { user: 'group:x' })
  await a.broadcast('m', ['marker'])
  await b.broadcast('m', ['marker b'])
  const everyone = [...members, alice, userX]
  await waitForTag(everyone, 'marker')
  await waitForTag(everyone, 'marker b')

  // The markers come from two instances, so only the other messages have a fixed order.
  const unmarked = (received: string[]): string[] => received.filter((tag) => !tag.startsWith('marker'))
  for (const [index, member] of members.entries()) {
    assert.deepEqual(unmarked(member.received), [`g${index}`], `messages of group ${JSON.stringify(tricky[index]).slice(0, 40)}`)
  }
  assert.deepEqual(unmarked(alice.received), ['user alice'])
  assert.deepEqual(unmarked(userX.received), ['user group:x'])
})

test('overlong names are rejected', async (t) => {
  const [a] = await startInstances(t, 1, () => ({}))
  await assert.rejects(a!.broadcast('m', [], { group: 'x'.repeat(1025) }), { code: 'FST_BACKPLANE_INVALID_GROUP_NAME' })
  await assert.rejects(a!.broadcast('m', [], { user: '' }), { code: 'FST_BACKPLANE_INVALID_USER_ID' })
  await assert.rejects(a!.broadcast('m', [], { connection: [] }), { code: 'FST_BACKPLANE_INVALID_BROADCAST' })
  await assert.rejects(a!.broadcast('m', [], { group: 'g', user: 'u' }), { code: 'FST_BACKPLANE_INVALID_BROADCAST' })
})

test('subscriptions follow local membership', async (t) => {
  const { redis, numsub } = await startObservedRedis(t)

  const [a, b] = await startInstances(t, 2, () => ({ redis: redis.url })) as [FastifyInstance, FastifyInstance]
  const first = await connectTestClient(t, a, 'first', undefined, ['busy'])
  const second = await connectTestClient(t, a, 'second', undefined, ['busy'])
  assert.equal(await numsub(groupChannel('busy')), 1, 'one SUBSCRIBE for two local members')
  assert.equal(await numsub(groupChannel('quiet')), 0, 'no subscription without members')
  assert.equal(await numsub(allChannel), 2, 'each instance subscribes to the hub channel')

  await first.connection.invoke('LeaveGroup', 'busy')
  assert.equal(await numsub(groupChannel('busy')), 1, 'still subscribed while a member remains')
  await second.connection.invoke('LeaveGroup', 'busy')
  assert.equal(await numsub(groupChannel('busy')), 0, 'unsubscribed after the last member left')

  await b.broadcast('m', ['to busy'], { group: 'busy' })
  await b.broadcast('m', ['marker'])
  await waitForTag([first, second], 'marker')
  assert.deepEqual(first.received, ['marker'])
  assert.deepEqual(second.received, ['marker'])

  await first.connection.invoke('JoinGroup', 'busy')
  await first.connection.stop()
  await waitForSubscribers(numsub, groupChannel('busy'), 0, 'membership ends when the connection closes')
})

test('connections share their instance route', async (t) => {
  const { redis, observer, numsub } = await startObservedRedis(t)

  const [a, b] = await startInstances(t, 2, () => ({ redis: redis.url })) as [FastifyInstance, FastifyInstance]
  const x = await connectTestClient(t, a, 'x', undefined)
  const y = await connectTestClient(t, a, 'y', undefined)

  // Ids that the instance issued name its route, and no connection subscribes a channel of its own.
  const route = /^[\w-]{22}\.([\w-]{8})$/.exec(x.id)?.[1]
  assert.ok(route !== undefined, `${x.id} names a route`)
  assert.ok(y.id.endsWith(`.${route}`), 'both connections of instance A name the same route')
  assert.equal(await numsub(`${prefix}route:${route}`), 1, 'instance A subscribes its route channel')
  assert.deepEqual(await observer.pubsub('CHANNELS', `${prefix}*:connection:*`), [], 'no per-connection channel')

  // Messages for one connection, and group changes made for it on another instance, arrive.
  await b.broadcast('m', ['to x'], { connection: x.id })
  await b.backplane.hubContext(hub).groups.add(y.id, 'joined-from-b')
  await b.broadcast('m', ['to the group'], { group: 'joined-from-b' })
  await b.broadcast('m', ['marker'])
  await waitForTag([x, y], 'marker')
  assert.deepEqual(x.received, ['to x', 'marker'])
  assert.deepEqual(y.received, ['to the group', 'marker'])

  // A negotiated id names no route, because its WebSocket may open on another instance, so that
  // connection subscribes its own channel.
  const negotiated = await (await fetch(`${baseUrl(a)}${hub}/negotiate?negotiateVersion=1`, { method: 'POST' })).json() as { connectionId: string, connectionToken: string }
  assert.equal(/^[\w-]{22}$/.test(negotiated.connectionId), true, `${negotiated.connectionId} names no route`)
  const client = await RawHubClient.open(`${baseUrl(a).replace(/^http/, 'ws')}${hub}?id=${encodeURIComponent(negotiated.connectionToken)}`)
  t.after(() => client.close())
  client.send(JSON_HANDSHAKE)
  assert.equal(await client.nextRecord(), '{}')
  const ownChannel = `${prefix}${hub.length}:${hub}:connection:${negotiated.connectionId}`
  await waitForSubscribers(numsub, ownChannel, 1, 'the negotiated connection subscribes its own channel')
})

test('presence counts across instances', async (t) => {
  const redis = await startRedisServer()
  t.after(() => redis.stop())
  const [a, b, c] = await startInstances(t, 3, () => ({ redis: redis.url, presenceTimeout: 500 })) as [FastifyInstance, FastifyInstance, FastifyInstance]
  await connectTestClient(t, a, 'a1', undefined, ['room'])
  await connectTestClient(t, b, 'b1', undefined, ['room'])
  await connectTestClient(t, b, 'b2', undefined)
  await connectTestClient(t, c, 'c1', undefined, ['room'])

  assert.deepEqual(await a.backplane.hubContext().count(), { connections: 4, instances: 3, complete: true })
  assert.deepEqual(await c.backplane.hubContext().count({ group: 'room' }), { connections: 3, instances: 3, complete: true })

  // A subscriber that never replies plays the part of an instance that hangs.
  const silent = new Redis(redis.port, '127.0.0.1')
  t.after(() => silent.disconnect())
  await silent.subscribe(allChannel)
  const started = Date.now()
  const partial = await b.backplane.hubContext().count()
  assert.deepEqual(partial, { connections: 4, instances: 3, complete: false })
  assert.ok(Date.now() - started < 10_000, 'the wait is bounded')
})
