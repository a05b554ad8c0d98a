import assert from 'node:assert/strict'
import { setImmediate as nextTurn, setTimeout as delay } from 'node:timers/promises'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { BroadcastOptions } from '../src/index.js'
import { startInstance } from './helpers/instances.js'
import { waitUntil } from './helpers/redis-admin.js'
import { startRedisServer } from './helpers/redis-server.js'
import { connectClient, Received } from './helpers/signalr.js'

const INVALID_BROADCAST = 'FST_BACKPLANE_INVALID_BROADCAST'
const INVALID_GROUP_NAME = 'FST_BACKPLANE_INVALID_GROUP_NAME'

type BroadcastCall = [method: unknown, args?: unknown, options?: BroadcastOptions]

const circular: Record<string, unknown> = {}
circular.self = circular

const invalidBroadcasts: Array<{ name: string, call: BroadcastCall, code: string }> = [
  { name: 'numeric method', call: [123, []], code: INVALID_BROADCAST },
  { name: 'empty method', call: ['', []], code: INVALID_BROADCAST },
  { name: 'string arguments', call: ['news', 'not an array'], code: INVALID_BROADCAST },
  { name: 'unencodable arguments', call: ['news', [circular]], code: INVALID_BROADCAST },
  { name: 'empty group', call: ['news', [], { group: '' }], code: INVALID_GROUP_NAME },
  { name: 'overlong group', call: ['news', [], { group: 'g'.repeat(1025) }], code: INVALID_GROUP_NAME },
  { name: 'numeric except', call: ['news', [], { except: 5 as unknown as string }], code: INVALID_BROADCAST },
  { name: 'empty hub', call: ['news', [], { hub: '' }], code: INVALID_BROADCAST }
]

/** Calls `app.broadcast` with arguments that its types forbid, as untyped callers can. */
function broadcastUnchecked (app: FastifyInstance, [method, args, options]: BroadcastCall): Promise<void> {
  return app.broadcast(method as string, args as unknown[], options)
}

/**
 * Collects unhandled rejections for the rest of the test. Node reports one once the microtask
 * queue is empty, so `settled()` waits two turns of the event loop before a test reads the list.
 */
function watchUnhandledRejections (t: TestContext): { rejections: unknown[], settled: () => Promise<void> } {
  const rejections: unknown[] = []
  const listener = (reason: unknown): void => { rejections.push(reason) }
  process.on('unhandledRejection', listener)
  t.after(() => { process.off('unhandledRejection', listener) })
  return {
    rejections,
    settled: async () => {
      await nextTurn()
      await nextTurn()
    }
  }
}

/** Resolves with the error that `promise` rejects with, or with undefined if it fulfills. */
async function rejectionOf (promise: Promise<unknown>): Promise<(Error & { code?: string }) | undefined> {
  try {
    await promise
    return undefined
  } catch (err) {
    return err as Error & { code?: string }
  }
}

function warningCodes (lines: string[]): string[] {
  return lines
    .map((line) => JSON.parse(line) as { level: number, err?: { code?: string } })
    .filter((entry) => entry.level === 40 && entry.err?.code !== undefined)
    .map((entry) => entry.err!.code!)
}

test('invalid broadcasts reject with code', async (t) => {
  const app = await startInstance(t)

  for (const { name, call, code } of invalidBroadcasts) {
    await assert.rejects(broadcastUnchecked(app, call), { code }, name)
  }
})

test('ignored invalid broadcasts stay handled', async (t) => {
  const unhandled = watchUnhandledRejections(t)
  const lines: string[] = []
  const app = await startInstance(t, { logLines: lines })

  for (const { call } of invalidBroadcasts) void broadcastUnchecked(app, call)
  await unhandled.settled()

  assert.deepEqual(unhandled.rejections, [])
  const logged = warningCodes(lines)
  assert.ok(logged.includes(INVALID_BROADCAST), `warnings logged: ${logged.join(', ')}`)
  assert.ok(logged.includes(INVALID_GROUP_NAME), `warnings logged: ${logged.join(', ')}`)
})

test('broadcast during Redis outage', async (t) => {
  const unhandled = watchUnhandledRejections(t)
  const redis = await startRedisServer()
  t.after(() => redis.stop())

  // One retry per command, so that a PUBLISH fails soon after Redis goes away.
  const app = await startInstance(t, { backplane: { redis: { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: 1 } } })
  const client = await connectClient(app, '/testHub')
  t.after(() => client.stop())
  const received = new Received(client, 'news')
  await redis.stop()

  void app.broadcast('news', ['ignored'])
  const observed = app.broadcast('news', ['observed'])

  // The observed broadcast was queued after the ignored one, so it fails after it.
  await assert.rejects(observed, { code: 'FST_BACKPLANE_PUBLISH_FAILED' })
  await unhandled.settled()
  assert.deepEqual(unhandled.rejections, [])
  assert.equal(app.backplane.connected, false)

  // Local connections do not depend on Redis.
  assert.deepEqual(await received.waitFor(2), [['ignored'], ['observed']])
})

test('pending broadcasts settle on close', async (t) => {
  const unhandled = watchUnhandledRejections(t)
  const redis = await startRedisServer()
  t.after(() => redis.stop())

  const app = await startInstance(t, { backplane: { redis: redis.url, closeTimeout: 500 } })
  await redis.stop()

  void app.broadcast('news', ['ignored'])
  const observed = rejectionOf(app.broadcast('news', ['observed']))

  const deadline = new AbortController()
  const closed = app.close().then(() => 'closed')
  const outcome = await Promise.race([closed, delay(20_000, 'timed out', { signal: deadline.signal })])
  deadline.abort()
  if (outcome !== 'closed') {
    // Let the queued commands through, so that the test ends instead of hanging.
    await redis.restart()
    await closed
  }
  assert.equal(outcome, 'closed', 'app.close() waited more than 20 s while Redis was down')

  assert.equal((await observed)?.code, 'FST_BACKPLANE_PUBLISH_FAILED')
  await unhandled.settled()
  assert.deepEqual(unhandled.rejections, [])
})

test('outage broadcast not replayed later', async (t) => {
  // The transport documents Redis pub/sub as at-most-once, with nothing buffered across an
  // outage, so a broadcast sent while Redis is down must fail, not wait for the reconnect.
  const redis = await startRedisServer()
  t.after(() => redis.stop())
  const a = await startInstance(t, { backplane: { redis: redis.url } })
  const b = await startInstance(t, { backplane: { redis: redis.url } })
  const client = await connectClient(b, '/testHub')
  t.after(() => client.stop())
  const news = new Received<[string]>(client, 'news')
  const probes = new Received(client, 'probe')

  await redis.stop()
  const outcome = rejectionOf(a.broadcast('news', ['during outage']))
  await redis.restart()
  await waitUntil('both instances reconnect', async () => a.backplane.connected && b.backplane.connected)

  // B may resubscribe a moment after it reconnects, so probes repeat until one arrives.
  await waitUntil('a probe from A reaches B', async () => {
    await a.broadcast('probe', [])
    return probes.calls.length > 0
  })

  assert.equal((await outcome)?.code, 'FST_BACKPLANE_PUBLISH_FAILED')
  assert.deepEqual(news.calls, [])
})

test('broadcast after close rejects', async (t) => {
  const unhandled = watchUnhandledRejections(t)
  const app = await startInstance(t)
  await app.close()

  assert.equal(app.backplane.closed, true)
  await assert.rejects(app.broadcast('news', ['late']), { code: 'FST_BACKPLANE_CLOSED' })

  void app.broadcast('news', ['late and ignored'])
  await unhandled.settled()
  assert.deepEqual(unhandled.rejections, [])
})
