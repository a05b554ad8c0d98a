import assert from 'node:assert/strict'
import { once } from 'node:events'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import { Redis } from 'ioredis'
import { PublishBatch } from '../src/transport/publish-batch.js'
import { connectAdmin } from './helpers/redis-admin.js'
import { startRedisServer } from './helpers/redis-server.js'
import type { RedisServer } from './helpers/redis-server.js'

/** Starts a redis-server with a user that may publish only on channels that start with `allowed:`. */
async function startWithLimitedUser (t: TestContext): Promise<RedisServer> {
  const redis = await startRedisServer()
  t.after(() => redis.stop())
  const admin = await connectAdmin(t, redis)
  await admin.call('ACL', 'SETUSER', 'publisher', 'on', '>publisher-password', 'resetchannels', '&allowed:*', '+@all')
  return redis
}

function connectAs (t: TestContext, redis: RedisServer, options: { enableOfflineQueue?: boolean } = {}): Redis {
  const client = new Redis({ host: '127.0.0.1', port: redis.port, username: 'publisher', password: 'publisher-password', ...options })
  t.after(() => { client.disconnect() })
  return client
}

test('refused publish in a batch', async (t) => {
  const redis = await startWithLimitedUser(t)
  const client = connectAs(t, redis)
  await once(client, 'ready')
  const batch = new PublishBatch(client)

  // Issued in one tick, so the three go out in one pipeline.
  const outcomes = await Promise.allSettled([
    batch.publish('allowed:1', Buffer.from('a')),
    batch.publish('denied:1', Buffer.from('b')),
    batch.publish('allowed:2', Buffer.from('c'))
  ])

  assert.equal(outcomes[0].status, 'fulfilled')
  assert.equal(outcomes[1].status, 'rejected')
  assert.match(String((outcomes[1] as PromiseRejectedResult).reason), /NOPERM/)
  assert.equal(outcomes[2].status, 'fulfilled')
})

test('refused publish alone', async (t) => {
  const redis = await startWithLimitedUser(t)
  const client = connectAs(t, redis)
  await once(client, 'ready')

  await assert.rejects(new PublishBatch(client).publish('denied:1', Buffer.from('a')), /NOPERM/)
})

test('batch on a closed connection', async (t) => {
  const redis = await startWithLimitedUser(t)
  const client = connectAs(t, redis, { enableOfflineQueue: false })
  await once(client, 'ready')
  client.disconnect()
  const batch = new PublishBatch(client)

  const outcomes = await Promise.allSettled([
    batch.publish('allowed:1', Buffer.from('a')),
    batch.publish('allowed:2', Buffer.from('b'))
  ])

  assert.deepEqual(outcomes.map((outcome) => outcome.status), ['rejected', 'rejected'])
})
