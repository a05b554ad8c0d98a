import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { test } from 'node:test'
import Fastify from 'fastify'
import { backplane } from '../src/index.js'
import { startRedisServer } from './helpers/redis-server.js'

const PASSWORD = 'unreachable-Pa55word-8d2c'

/** Returns a loopback port that nothing listens on. */
async function closedPort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

test('unreachable Redis fails ready', async (t) => {
  const port = await closedPort()
  const lines: string[] = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => { lines.push(line) } } } })
  t.after(() => app.close())

  const started = performance.now()
  await assert.rejects(async () => {
    await app.register(backplane, { redis: `redis://:${PASSWORD}@127.0.0.1:${port}`, connectTimeout: 500 })
    await app.ready()
  }, (err: Error & { code?: string }) => {
    assert.equal(err.code, 'FST_BACKPLANE_REDIS_UNREACHABLE')
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port} was not ready within 500 ms`))
    assert.match(err.message, /ECONNREFUSED/)
    assert.ok(!err.message.includes(PASSWORD), 'the message leaves out the password')
    return true
  })
  // Fastify's own plugin timeout, 10 s, would have fired otherwise.
  assert.ok(performance.now() - started < 5000, 'ready() fails at connectTimeout, not at the plugin timeout')

  const errors = lines.filter((line) => line.includes('backplane Redis connection error'))
  assert.ok(errors.length > 0, 'the refused connections are logged while ready() waits')
  const logged = JSON.parse(errors[0]!) as { error?: { type?: string, code?: string, message?: string } }
  assert.equal(logged.error?.type, 'Error')
  assert.equal(logged.error?.code, 'ECONNREFUSED')
  assert.match(String(logged.error?.message), /ECONNREFUSED/)
  assert.deepEqual(lines.filter((line) => line.includes(PASSWORD)), [], 'no log line contains the password')
})

test('wrong password fails ready at once', async (t) => {
  const redis = await startRedisServer(['--requirepass', 'the-right-password'])
  t.after(() => redis.stop())
  const lines: string[] = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => { lines.push(line) } } } })
  t.after(() => app.close())

  const started = performance.now()
  await assert.rejects(async () => {
    await app.register(backplane, { redis: `redis://:${PASSWORD}@127.0.0.1:${redis.port}`, connectTimeout: 20_000 })
    await app.ready()
  }, (err: Error & { code?: string }) => {
    assert.equal(err.code, 'FST_BACKPLANE_REDIS_REJECTED')
    assert.match(err.message, new RegExp(`Redis at 127\\.0\\.0\\.1:${redis.port} rejected the connection: WRONGPASS`))
    assert.ok(!err.message.includes(PASSWORD), 'the message leaves out the password')
    return true
  })
  // Retrying cannot fix a wrong password, so ready() does not wait for the 20 s timeout.
  assert.ok(performance.now() - started < 10_000, 'ready() fails before connectTimeout')
  assert.deepEqual(lines.filter((line) => line.includes(PASSWORD)), [], 'no log line contains the password')
})

test('connectTimeout rejects a negative value', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await assert.rejects(async () => {
    await app.register(backplane, { connectTimeout: -1 })
    await app.ready()
  }, (err: Error & { code?: string }) => {
    assert.equal(err.code, 'FST_BACKPLANE_INVALID_OPTION')
    assert.match(err.message, /"connectTimeout": expected a non-negative number of milliseconds, got -1/)
    return true
  })
})
