import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import { backplane, parseRedisUrl } from '../src/index.js'
import { startInstance } from './helpers/instances.js'
import { connectAdmin, listClients, waitUntil } from './helpers/redis-admin.js'
import { startRedisServer } from './helpers/redis-server.js'
import { connectClient, Received } from './helpers/signalr.js'

const INVALID_URL = 'FST_BACKPLANE_INVALID_REDIS_URL'

interface ValidCase {
  url: string
  rejectUnauthorized?: boolean
  expected: Record<string, unknown>
}

const validCases: ValidCase[] = [
  { url: 'redis://host:6380/2', expected: { host: 'host', port: 6380, db: 2 } },
  { url: 'redis://host', expected: { host: 'host', port: 6379, db: 0 } },
  { url: 'redis://host:6379/', expected: { host: 'host', port: 6379, db: 0 } },
  { url: 'REDIS://host/1', expected: { host: 'host', port: 6379, db: 1 } },
  {
    url: 'rediss://cache.example.com:6380',
    expected: { host: 'cache.example.com', port: 6380, db: 0, tls: { servername: 'cache.example.com', rejectUnauthorized: true } }
  },
  {
    url: 'rediss://cache.example.com',
    rejectUnauthorized: false,
    expected: { host: 'cache.example.com', port: 6379, db: 0, tls: { servername: 'cache.example.com', rejectUnauthorized: false } }
  },
  {
    url: 'redis://user:p%40ss%3Aw%2Frd@host:6379/3',
    expected: { host: 'host', port: 6379, db: 3, username: 'user', password: 'p@ss:w/rd' }
  },
  {
    url: 'rediss://:secret@h:1',
    expected: { host: 'h', port: 1, db: 0, password: 'secret', tls: { servername: 'h', rejectUnauthorized: true } }
  },
  { url: 'redis://user@host', expected: { host: 'host', port: 6379, db: 0, username: 'user' } },
  { url: 'redis://[::1]:6390', expected: { host: '::1', port: 6390, db: 0 } },
  // TLS forbids an IP address as server name, so IP hosts get none.
  { url: 'rediss://[::1]:6390', expected: { host: '::1', port: 6390, db: 0, tls: { rejectUnauthorized: true } } },
  { url: 'rediss://127.0.0.1', expected: { host: '127.0.0.1', port: 6379, db: 0, tls: { rejectUnauthorized: true } } },
  { url: 'redis://h:65535', expected: { host: 'h', port: 65535, db: 0 } }
]

for (const { url, rejectUnauthorized, expected } of validCases) {
  const suffix = rejectUnauthorized === undefined ? '' : ` (rejectUnauthorized ${rejectUnauthorized})`
  test(`parseRedisUrl accepts ${url}${suffix}`, () => {
    const options = rejectUnauthorized === undefined ? parseRedisUrl(url) : parseRedisUrl(url, { rejectUnauthorized })
    assert.deepEqual({ ...options }, expected)
  })
}

interface InvalidCase {
  url: string
  /** A secret that the error message must not contain. */
  secret?: string
}

const invalidCases: InvalidCase[] = [
  { url: 'http://host:6379' },
  { url: 'http://user:hunter2@host', secret: 'hunter2' },
  { url: 'redis:host' },
  { url: 'redis://' },
  { url: 'redis://:hunter2@', secret: 'hunter2' },
  { url: 'redis://h:99999' },
  { url: 'redis://:hunter2@h:99999', secret: 'hunter2' },
  { url: 'redis://h:0' },
  { url: 'redis://h:abc' },
  { url: 'redis://user:hunter2@h:abc', secret: 'hunter2' },
  { url: 'redis://h/x' },
  { url: 'redis://h/2/3' },
  { url: 'redis://:hunter2@h/x', secret: 'hunter2' },
  { url: 'redis://user:%ZZ@h' },
  { url: 'redis://user:hunter2%ZZ@h', secret: 'hunter2' },
  { url: 'redis://%ZZ:hunter2@h', secret: 'hunter2' },
  // Unencoded reserved characters end the authority early, so the rest of the password
  // lands in the port, the path or the fragment.
  { url: 'redis://user:hun#ter2@h', secret: 'ter2' },
  { url: 'redis://user:hun/ter2@h', secret: 'ter2' },
  { url: 'redis://user:1234/hunter2@h', secret: 'hunter2' }
]

for (const { url, secret } of invalidCases) {
  test(`parseRedisUrl rejects ${url}`, () => {
    assert.throws(() => parseRedisUrl(url), (err: Error & { code?: string }) => {
      assert.equal(err.code, INVALID_URL)
      if (secret !== undefined) assert.ok(!err.message.includes(secret), `the message contains "${secret}": ${err.message}`)
      return true
    })
  })
}

/** Creates a Fastify instance that writes its log lines, from trace level up, to `lines`. */
function createLoggedApp (lines: string[]): FastifyInstance {
  return Fastify({ logger: { level: 'trace', stream: { write: (line: string) => { lines.push(line) } } } })
}

function assertNoLineContains (lines: string[], secrets: string[]): void {
  assert.ok(lines.length > 0, 'no log lines were captured')
  for (const secret of secrets) {
    const leaks = lines.filter((line) => line.includes(secret))
    assert.deepEqual(leaks, [], `log lines contain "${secret}"`)
  }
}

test('malformed URL fails ready() without leak', async (t) => {
  const lines: string[] = []
  const app = createLoggedApp(lines)
  t.after(() => app.close())
  app.register(backplane, { redis: 'redis://user:hunter2@127.0.0.1:abc' })

  const err = await app.ready().then(() => undefined, (err: Error & { code?: string }) => err)

  assert.equal(err?.code, INVALID_URL)
  assert.ok(!err.message.includes('hunter2'), err.message)
  // What an app typically does with a startup error.
  app.log.error(err)
  assertNoLineContains(lines, ['hunter2'])
})

test('password URL connects without leak', async (t) => {
  const password = 'p@ss:w/rd'
  const encoded = encodeURIComponent(password)
  const redis = await startRedisServer(['--requirepass', password])
  t.after(() => redis.stop())

  const url = `redis://:${encoded}@127.0.0.1:${redis.port}`
  const lines: string[] = []
  const a = await startInstance(t, { backplane: { redis: url }, logLines: lines })
  const b = await startInstance(t, { backplane: { redis: url }, logLines: lines })
  assert.equal(a.backplane.connected, true)

  const client = await connectClient(b, '/testHub')
  const received = new Received(client, 'news')
  await a.broadcast('news', ['through an authenticated Redis'])
  assert.deepEqual(await received.waitFor(1), [['through an authenticated Redis']])
  await client.stop()

  await a.close()
  await b.close()
  assertNoLineContains(lines, [password, encoded])
})

test('wrong password fails without leak', async (t) => {
  const password = 'right-Pa55'
  const wrong = 'wrong-Pa55'
  const redis = await startRedisServer(['--requirepass', password])
  t.after(() => redis.stop())

  const lines: string[] = []
  const connectionError = new Promise<void>((resolve) => {
    const app = Fastify({
      logger: {
        level: 'trace',
        stream: {
          write: (line: string) => {
            lines.push(line)
            if (line.includes('WRONGPASS')) resolve()
          }
        }
      }
    })
    t.after(() => app.close().catch(() => {}))
    app.register(backplane, { redis: `redis://:${wrong}@127.0.0.1:${redis.port}` })

    // Either outcome is acceptable: ready() fails, or the plugin starts and logs the errors.
    app.ready().then(() => {}, (err: Error) => {
      app.log.error(err)
      resolve()
    })
  })
  await connectionError

  assertNoLineContains(lines, [wrong])
})

test('close after auth failure resolves', async (t) => {
  const redis = await startRedisServer(['--requirepass', 'right-Pa55'])
  t.after(() => redis.stop())

  const admin = await connectAdmin(t, redis, 'right-Pa55')

  const app = Fastify()
  app.register(backplane, { redis: `redis://:wrong-Pa55@127.0.0.1:${redis.port}` })
  await assert.rejects(async () => { await app.ready() })

  // An app closes some time after its startup failed: by then the failed connection is gone.
  await waitUntil('the failed connection is gone', async () => (await listClients(admin)).length === 0)
  await listClients(admin)
  await app.close()
})
