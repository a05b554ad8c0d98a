import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import { backplane } from '../src/index.js'
import { startInstance } from './helpers/instances.js'
import { startRedisServer } from './helpers/redis-server.js'
import { connectClient, Received } from './helpers/signalr.js'

// Heroku Key-Value Store serves rediss:// URLs with self-signed certificates, which these
// tests reproduce with a redis-server whose only port speaks TLS.

test('rediss with self-signed certificate', async (t) => {
  const redis = await startRedisServer([], { tls: true })
  t.after(() => redis.stop())
  const options = { redis: redis.url, redisRejectUnauthorized: false, channelPrefix: 'tls-test:' }
  const sender = await startInstance(t, { backplane: options })
  const receiver = await startInstance(t, { backplane: options })

  const client = await connectClient(receiver, '/testHub')
  t.after(() => client.stop())
  const received = new Received<[string]>(client, 'notice')
  await sender.broadcast('notice', ['over TLS'])

  assert.deepEqual(await received.waitFor(1), [['over TLS']])
  assert.equal(sender.backplane.connected, true)
})

test('rediss rejects an unverified certificate', async (t) => {
  const redis = await startRedisServer([], { tls: true })
  t.after(() => redis.stop())
  const app = Fastify()
  t.after(() => app.close())

  const started = performance.now()
  await assert.rejects(async () => {
    await app.register(backplane, { redis: redis.url, connectTimeout: 20_000 })
    await app.ready()
  }, (err: Error & { code?: string }) => {
    assert.equal(err.code, 'FST_BACKPLANE_REDIS_REJECTED')
    assert.match(err.message, new RegExp(`Redis at 127\\.0\\.0\\.1:${redis.port} rejected the connection: self-signed certificate`))
    return true
  })
  // Retrying cannot make the certificate valid, so ready() does not wait for the 20 s timeout.
  assert.ok(performance.now() - started < 10_000, 'ready() fails before connectTimeout')
})
