import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import { buildApp } from '../src/app.js'
import { freePort, startRedisServer } from '../../fastify-backplane/test/helpers/redis-server.js'
import { cleanUpAtEnd, startRedis } from './helpers.js'

test('start fails when Redis refuses', { timeout: 30_000 }, async () => {
  const closedPort = await freePort()
  const started = performance.now()

  await assert.rejects(
    buildApp({ redisUrl: `redis://127.0.0.1:${closedPort}`, redisConnectTimeout: 300 }),
    (err: Error & { code?: string }) => {
      assert.equal(err.code, 'FST_BACKPLANE_REDIS_UNREACHABLE')
      assert.match(err.message, new RegExp(`Redis at 127\\.0\\.0\\.1:${closedPort} was not ready within 300 ms`))
      assert.match(err.message, /last error: connect ECONNREFUSED/)
      assert.match(err.message, /Check that the redis option or REDIS_URL names a running server/)
      return true
    }
  )
  // Fastify's plugin timeout is 10 s, so this fails if the start waited for it instead.
  assert.ok(performance.now() - started < 8000, 'the start failed at redisConnectTimeout')
})

test('start fails at once on a wrong password', { timeout: 30_000 }, async (t) => {
  const redis = await startRedis(t, ['--requirepass', 'the-right-password'])
  const started = performance.now()

  await assert.rejects(
    buildApp({ redisUrl: `redis://:the-wrong-password@127.0.0.1:${redis.port}`, redisConnectTimeout: 20_000 }),
    (err: Error & { code?: string }) => {
      assert.equal(err.code, 'FST_BACKPLANE_REDIS_REJECTED')
      assert.match(err.message, new RegExp(`Redis at 127\\.0\\.0\\.1:${redis.port} rejected the connection: WRONGPASS`))
      assert.ok(!err.message.includes('the-wrong-password'), 'the message leaves out the password')
      return true
    }
  )
  // Retrying cannot fix a wrong password, so the start does not wait for the 20 s timeout.
  assert.ok(performance.now() - started < 10_000, 'the start failed before redisConnectTimeout')
})

test('start waits for Redis to come up', { timeout: 30_000 }, async (t) => {
  const redis = await startRedis(t)
  await redis.stop()

  const building = buildApp({ redisUrl: redis.url, redisConnectTimeout: 20_000 })
  await delay(500)
  await redis.restart()
  const app = await building
  cleanUpAtEnd(t, () => app.close())

  const health = await app.inject({ method: 'GET', url: '/healthz' })
  assert.equal(health.statusCode, 200)
  assert.equal(health.json().redisConnected, true)
})

test('start accepts a self-signed rediss server', { timeout: 30_000 }, async (t) => {
  const redis = await startRedisServer([], { tls: true })
  cleanUpAtEnd(t, () => redis.stop())

  // The server entry's default: REDIS_TLS_REJECT_UNAUTHORIZED unset, as on Heroku.
  const app = await buildApp({ redisUrl: redis.url, redisRejectUnauthorized: false })
  cleanUpAtEnd(t, () => app.close())

  const health = await app.inject({ method: 'GET', url: '/healthz' })
  assert.equal(health.statusCode, 200)
  assert.equal(health.json().redisConnected, true)
})

test('start fails at once on an unverified certificate', { timeout: 30_000 }, async (t) => {
  const redis = await startRedisServer([], { tls: true })
  cleanUpAtEnd(t, () => redis.stop())
  const started = performance.now()

  await assert.rejects(
    buildApp({ redisUrl: redis.url, redisRejectUnauthorized: true, redisConnectTimeout: 20_000 }),
    (err: Error & { code?: string }) => {
      assert.equal(err.code, 'FST_BACKPLANE_REDIS_REJECTED')
      assert.match(err.message, new RegExp(`Redis at 127\\.0\\.0\\.1:${redis.port} rejected the connection: self-signed certificate`))
      return true
    }
  )
  assert.ok(performance.now() - started < 10_000, 'the start failed before redisConnectTimeout')
})
