import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { test } from 'node:test'
import { connectClient, Received } from './helpers/signalr.js'
import { startInstance } from './helpers/instances.js'
import { startRedisServer } from './helpers/redis-server.js'

test('broadcast from B reaches clients on A through Redis', async (t) => {
  const redis = await startRedisServer()
  t.after(() => redis.stop())

  const methods = {
    JoinGroup: async (context: { groups: { add: (group: string) => Promise<void> } }, group: string) => {
      await context.groups.add(group)
    }
  }
  const a = await startInstance(t, { backplane: { redis: redis.url }, hub: { methods } })
  const b = await startInstance(t, { backplane: { redis: redis.url }, hub: { methods } })

  const member = await connectClient(a, '/testHub')
  const outsider = await connectClient(a, '/testHub')
  t.after(() => member.stop())
  t.after(() => outsider.stop())
  await member.invoke('JoinGroup', 'blue')

  const memberAll = new Received(member, 'announce')
  const outsiderAll = new Received(outsider, 'announce')
  const memberGroup = new Received(member, 'groupNews')
  const outsiderGroup = new Received(outsider, 'groupNews')

  await b.broadcast('announce', ['hello', 1])
  await b.broadcast('groupNews', ['for blue'], { group: 'blue' })

  assert.deepEqual(await memberAll.waitFor(1), [['hello', 1]])
  assert.deepEqual(await outsiderAll.waitFor(1), [['hello', 1]])
  assert.deepEqual(await memberGroup.waitFor(1), [['for blue']])

  // A message sent after the group broadcast shows the outsider has had time to receive it.
  await b.broadcast('announce', ['after'])
  await outsiderAll.waitFor(2)
  assert.equal(outsiderGroup.calls.length, 0)
})

test('in-process delivery without Redis reaches local clients', async (t) => {
  const app = await startInstance(t, { backplane: { redis: '' } })
  assert.equal(app.backplane.transport, 'in-process')

  const client = await connectClient(app, '/testHub')
  t.after(() => client.stop())
  const received = new Received(client, 'ping')
  await app.broadcast('ping', [42])
  assert.deepEqual(await received.waitFor(1), [[42]])
  await delay(50)
  assert.equal(received.calls.length, 1)
})
