import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { collectProcessErrors } from './helpers/process-errors.js'
import { startRedisCluster } from './helpers/redis-cluster.js'
import { connectTestClient, startInstances, waitForTag } from './helpers/scale-out.js'
import { checkEveryTargetKind } from './helpers/target-suite.js'

const hub = '/testHub'
const groupChannel = (group: string): string => `fastify-backplane:${hub.length}:${hub}:group:${group}`

test('every target kind on Redis Cluster', async (t) => {
  const cluster = await startRedisCluster(3)
  t.after(() => cluster.stop())
  await checkEveryTargetKind(t, () => ({ redisCluster: { nodes: cluster.urls } }))

  // The traffic above went through sharded pub/sub only: no classic PUBLISH reached any node.
  for (const port of cluster.ports) {
    const stats = String(await cluster.node(port).call('INFO', 'commandstats'))
    assert.doesNotMatch(stats, /cmdstat_publish:/, `node ${port} ran PUBLISH`)
  }
  const spublishes = await Promise.all(cluster.ports.map(async (port) => /cmdstat_spublish:calls=(\d+)/.exec(String(await cluster.node(port).call('INFO', 'commandstats')))?.[1] ?? '0'))
  assert.ok(spublishes.filter((calls) => Number(calls) > 0).length >= 2, `SPUBLISH spread over shards: ${spublishes.join(', ')}`)
})

test('resharding a busy group on Redis Cluster', async (t) => {
  const cluster = await startRedisCluster(3)
  t.after(() => cluster.stop())
  const [a, b] = await startInstances(t, 2, () => ({ redisCluster: { nodes: cluster.urls } })) as [FastifyInstance, FastifyInstance]
  const member = await connectTestClient(t, a, 'member', undefined, ['busy'])

  const channel = groupChannel('busy')
  const slot = Number(await cluster.node(cluster.ports[0]!).call('CLUSTER', 'KEYSLOT', channel))
  const owner = await cluster.ownerOf(slot)
  const shardSubscribers = async (port: number): Promise<number> => Number((await cluster.node(port).call('PUBSUB', 'SHARDNUMSUB', channel) as [string, number])[1])
  assert.equal(await shardSubscribers(owner), 1, 'the group channel is a shard channel on its owner')

  // Traffic flows while the slot moves; at-most-once delivery may lose messages during the move.
  let sent = 0
  let flowing = true
  const traffic = (async () => {
    while (flowing && sent < 5000) {
      await b.broadcast('m', [`n${sent++}`], { group: 'busy' }).catch(() => {})
      await new Promise((resolve) => setImmediate(resolve))
    }
  })()
  await waitForTag([member], 'n10')
  const target = cluster.ports.find((port) => port !== owner)!
  await cluster.moveSlot(slot, target)

  // After the move, the subscription follows the slot and new messages arrive again.
  const deadline = Date.now() + 20_000
  while (await shardSubscribers(target) !== 1) {
    assert.ok(Date.now() < deadline, 'the subscription moved to the new owner')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const afterMove = sent
  await waitForTag([member], `n${afterMove + 20}`, 20_000)
  flowing = false
  await traffic

  const numbers = member.received.map((tag) => Number(tag.slice(1)))
  assert.deepEqual(numbers, numbers.toSorted((x, y) => x - y), 'messages stay in order')
  assert.equal(new Set(numbers).size, numbers.length, 'no message arrives twice')
  assert.equal(await shardSubscribers(owner), 0, 'the old owner holds no subscription')
})

test('remote groups and subscription counts on Redis Cluster', async (t) => {
  const cluster = await startRedisCluster(3)
  t.after(() => cluster.stop())
  const [a, b] = await startInstances(t, 2, () => ({ redisCluster: { nodes: cluster.urls }, groupCommandTimeout: 500 })) as [FastifyInstance, FastifyInstance]
  const onB = await connectTestClient(t, b, 'onB', undefined)

  const channel = groupChannel('remote')
  const slot = Number(await cluster.node(cluster.ports[0]!).call('CLUSTER', 'KEYSLOT', channel))
  const owner = await cluster.ownerOf(slot)
  const shardSubscribers = async (): Promise<number> => Number((await cluster.node(owner).call('PUBSUB', 'SHARDNUMSUB', channel) as [string, number])[1])

  await a.backplane.hubContext().groups.add(onB.id, 'remote')
  assert.equal(await shardSubscribers(), 1, 'the owning instance subscribed to the group')
  await a.broadcast('m', ['joined'], { group: 'remote' })
  await waitForTag([onB], 'joined')

  await a.backplane.hubContext().groups.remove(onB.id, 'remote')
  assert.equal(await shardSubscribers(), 0, 'unsubscribed after the last member left')
  await assert.rejects(a.backplane.hubContext().groups.add('no-such-connection', 'remote'), { code: 'FST_BACKPLANE_CONNECTION_NOT_FOUND' })

  assert.deepEqual(await a.backplane.hubContext().count(), { connections: 1, instances: 2, complete: true })
})

test('shard restart on Redis Cluster', async (t) => {
  const errors = collectProcessErrors(t)
  const cluster = await startRedisCluster(3)
  t.after(() => cluster.stop())
  const [a, b] = await startInstances(t, 2, () => ({ redisCluster: { nodes: cluster.urls } })) as [FastifyInstance, FastifyInstance]
  const member = await connectTestClient(t, a, 'member', undefined, ['busy'])
  await b.broadcast('m', ['before'], { group: 'busy' })
  await waitForTag([member], 'before')

  // The shard that owns the group's channel crashes and comes back from its nodes.conf, with no
  // memory of the subscription.
  const channel = groupChannel('busy')
  const owner = await cluster.ownerOf(Number(await cluster.node(cluster.ports[0]!).call('CLUSTER', 'KEYSLOT', channel)))
  await cluster.restart(owner)

  // Broadcasts sent while the shard was away may be lost, but once the instances have
  // subscribed again new ones arrive, in order.
  let sent = 0
  const deadline = Date.now() + 30_000
  while (!member.received.includes(`after${sent - 1}`)) {
    assert.ok(Date.now() < deadline, `no broadcast reached the member within 30 s of the restart; received ${member.received.join(', ')}`)
    await b.broadcast('m', [`after${sent++}`], { group: 'busy' }).catch(() => {})
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  await b.broadcast('m', ['last'], { group: 'busy' })
  await waitForTag([member], 'last')
  const afterRestart = member.received.slice(member.received.indexOf('before') + 1)
  assert.equal(afterRestart.at(-1), 'last')
  const numbers = afterRestart.slice(0, -1).map((tag) => Number(tag.slice('after'.length)))
  assert.deepEqual(numbers, numbers.toSorted((x, y) => x - y), 'broadcasts after the restart arrive in order')
  assert.equal(Number((await cluster.node(owner).call('PUBSUB', 'SHARDNUMSUB', channel) as [string, number])[1]), 1, 'instance A subscribed again')
  assert.deepEqual(errors, [])
})
