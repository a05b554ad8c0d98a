import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import Fastify from 'fastify'
import type { FastifyBaseLogger } from 'fastify'
import { Redis } from 'ioredis'
import { backplane, connectRedis } from '../src/index.js'
import { waitUntil } from './helpers/redis-admin.js'
import { freePort, startRedisServer } from './helpers/redis-server.js'

const PASSWORD = 'connect-Pa55word-41f7'

/** Creates a logger whose lines the test reads, parsed, and checks at the end that none contains the password. */
function capturedLog (t: TestContext): { log: FastifyBaseLogger, lines: Array<Record<string, any>> } {
  const lines: Array<Record<string, any>> = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  t.after(async () => {
    await app.close()
    assert.deepEqual(lines.filter((line) => JSON.stringify(line).includes(PASSWORD)), [], 'no log line contains the password')
  })
  return { log: app.log, lines }
}

function withMessage (lines: Array<Record<string, any>>, message: string): Array<Record<string, any>> {
  return lines.filter((line) => line.msg === message)
}

test('connectRedis resolves a shared client', async (t) => {
  const redis = await startRedisServer(['--requirepass', PASSWORD])
  t.after(() => redis.stop())
  const { log, lines } = capturedLog(t)

  const client = await connectRedis(`redis://:${PASSWORD}@127.0.0.1:${redis.port}`, { log })
  t.after(() => client.quit())
  assert.equal(client.status, 'ready')
  assert.equal(await client.ping(), 'PONG')

  const app = Fastify()
  t.after(() => app.close())
  await app.register(backplane, { redis: client })
  await app.ready()
  assert.equal(app.backplane.transport, 'redis')
  assert.equal(app.backplane.connected, true)
  assert.deepEqual(withMessage(lines, 'Redis not ready yet; retrying'), [], 'no failed attempt to report')
})

test('connectRedis waits for Redis', async (t) => {
  const redis = await startRedisServer()
  t.after(() => redis.stop())
  await redis.stop()
  const { log, lines } = capturedLog(t)

  const connecting = connectRedis({ host: '127.0.0.1', port: redis.port }, { log, connectTimeout: 20_000 })
  await waitUntil('a failed attempt is logged', async () => withMessage(lines, 'Redis not ready yet; retrying').length > 0)
  await redis.restart()
  const client = await connecting
  t.after(() => client.quit())

  assert.equal(await client.ping(), 'PONG')
  const retrying = withMessage(lines, 'Redis not ready yet; retrying')
  assert.equal(retrying.length, 1, 'one line for all failed attempts')
  assert.equal(retrying[0]?.level, 40)
  assert.equal(retrying[0]?.redis, `127.0.0.1:${redis.port}`)
  assert.equal(retrying[0]?.error?.code, 'ECONNREFUSED')
})

test('connectRedis fails at connectTimeout', async (t) => {
  const port = await freePort()
  const { log } = capturedLog(t)

  const started = performance.now()
  await assert.rejects(connectRedis(`redis://:${PASSWORD}@127.0.0.1:${port}`, { log, connectTimeout: 300 }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'FST_BACKPLANE_REDIS_UNREACHABLE')
    assert.match(err.message, new RegExp(`Redis at 127\\.0\\.0\\.1:${port} was not ready within 300 ms \\(last error: connect ECONNREFUSED`))
    assert.ok(!err.message.includes(PASSWORD), 'the message leaves out the password')
    return true
  })
  assert.ok(performance.now() - started < 5000, 'the wait ended at connectTimeout')
})

test('connectRedis rejects a wrong password', async (t) => {
  const redis = await startRedisServer(['--requirepass', 'the-right-password'])
  t.after(() => redis.stop())
  const { log, lines } = capturedLog(t)

  const started = performance.now()
  await assert.rejects(connectRedis(`redis://:${PASSWORD}@127.0.0.1:${redis.port}`, { log, connectTimeout: 20_000 }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'FST_BACKPLANE_REDIS_REJECTED')
    assert.match(err.message, new RegExp(`Redis at 127\\.0\\.0\\.1:${redis.port} rejected the connection: WRONGPASS`))
    assert.ok(!err.message.includes('..'), `one period between the reason and the fix: ${err.message}`)
    assert.ok(!err.message.includes(PASSWORD), 'the message leaves out the password')
    return true
  })
  assert.ok(performance.now() - started < 10_000, 'the wait ended before connectTimeout')
  assert.deepEqual(withMessage(lines, 'Redis not ready yet; retrying'), [], 'a rejection is not reported as a retry')
})

test('connectRedis verifies rediss certificates', async (t) => {
  const redis = await startRedisServer([], { tls: true })
  t.after(() => redis.stop())
  const { log } = capturedLog(t)

  await assert.rejects(connectRedis(redis.url, { log, connectTimeout: 20_000 }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'FST_BACKPLANE_REDIS_REJECTED')
    assert.match(err.message, /rejected the connection: self-signed certificate/)
    return true
  })

  const client = await connectRedis(redis.url, { log, rejectUnauthorized: false })
  t.after(() => client.quit())
  assert.equal(await client.ping(), 'PONG')
})

test('connectRedis logs an outage once', async (t) => {
  const redis = await startRedisServer()
  t.after(() => redis.stop())
  const { log, lines } = capturedLog(t)
  const client = await connectRedis(redis.url, { log })
  t.after(() => client.quit())

  await redis.stop()
  await waitUntil('the outage is logged', async () => withMessage(lines, 'Redis connection failed; reconnecting').length > 0)
  // The client retries at least every 2 s, so this spans several failed attempts.
  await new Promise((resolve) => setTimeout(resolve, 3000))
  const failed = withMessage(lines, 'Redis connection failed; reconnecting')
  assert.equal(failed.length, 1, 'one warning per outage')
  assert.equal(failed[0]?.level, 40)
  assert.equal(failed[0]?.redis, `127.0.0.1:${redis.port}`)
  assert.equal(typeof failed[0]?.error?.message, 'string')

  await redis.restart()
  await waitUntil('the restore is logged', async () => withMessage(lines, 'Redis connection restored').length > 0)
  assert.equal(await client.ping(), 'PONG')
  assert.equal(withMessage(lines, 'Redis connection restored')[0]?.level, 30)
})

test('connectRedis rejects bad arguments', async (t) => {
  const { log } = capturedLog(t)
  const cases: Array<[string, () => Promise<unknown>, RegExp]> = [
    ['a number for redis', async () => connectRedis(6379 as never, { log }), /"redis": expected a URL string or ioredis options, got 6379/],
    ['a client for redis', async () => connectRedis(new Redis({ lazyConnect: true }) as never, { log }), /"redis": expected a URL string or ioredis options, got an ioredis client/],
    ['no logger', async () => connectRedis('redis://127.0.0.1:1', undefined as never), /"log": expected a pino logger, got undefined\. Pass the app's logger, app\.log\./],
    ['a negative connectTimeout', async () => connectRedis('redis://127.0.0.1:1', { log, connectTimeout: -1 }), /"connectTimeout": expected a non-negative number of milliseconds, got -1/],
    ['a string for rejectUnauthorized', async () => connectRedis('redis://127.0.0.1:1', { log, rejectUnauthorized: 'no' as never }), /"rejectUnauthorized": expected a boolean, got "no"/],
    ['a URL of another scheme', async () => connectRedis('http://127.0.0.1:1', { log }), /Invalid Redis URL/]
  ]
  for (const [description, call, message] of cases) {
    await assert.rejects(call, (err: Error & { code?: string }) => {
      assert.match(err.code ?? '', /^FST_BACKPLANE_INVALID_(OPTION|REDIS_URL)$/, description)
      assert.match(err.message, message, description)
      return true
    }, description)
  }
})
