import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { Redis } from 'ioredis'
import type { HubConnectionContext } from '../src/index.js'
import { startInstance } from './helpers/instances.js'
import { startRedisServer } from './helpers/redis-server.js'
import { connectClient, Received } from './helpers/signalr.js'
import { collectProcessErrors } from './helpers/process-errors.js'

// Whatever arrives on the backplane's channels, from a buggy instance of another version or
// from anything else that can publish to Redis, the instance must drop it without crashing
// and keep serving its clients.

const INSTANCE_ID = 'fuzzed-instance'

/** Envelope bytes: version byte, 4-byte header length, then the header and any frames. */
function envelope (header: unknown, frames: Buffer = Buffer.alloc(0), version = 1): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8')
  const prefix = Buffer.alloc(5)
  prefix.writeUInt8(version, 0)
  prefix.writeUInt32BE(json.length, 1)
  return Buffer.concat([prefix, json, frames])
}

const anyValue = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.string({ maxLength: 8 }), fc.integer(), fc.constant(null))
const target = fc.oneof(
  fc.record({ kind: fc.constantFrom('all', 'groups', 'connections', 'users'), groups: anyValue, connectionIds: anyValue, userIds: anyValue }, { requiredKeys: ['kind'] }),
  anyValue
)
/** Headers with a known envelope type and fields of plausible or wrong types. */
const header = fc.record({
  type: fc.oneof(fc.constantFrom('invocation', 'group', 'client-invocation', 'presence', 'probe', 'reply'), anyValue),
  origin: fc.oneof(fc.string({ maxLength: 8 }), anyValue),
  id: anyValue,
  requestId: fc.oneof(fc.nat(5), anyValue),
  hub: fc.oneof(fc.constant('/testHub'), anyValue),
  target,
  except: anyValue,
  frames: fc.oneof(fc.array(fc.tuple(fc.constantFrom('json', 'messagepack'), fc.nat(20)), { maxLength: 2 }), anyValue),
  connectionId: anyValue,
  group: anyValue,
  action: fc.oneof(fc.constantFrom('add', 'remove'), anyValue),
  method: anyValue,
  arguments: anyValue,
  count: anyValue,
  error: anyValue
}, { requiredKeys: ['type'] })
const payload = fc.oneof(
  fc.uint8Array({ maxLength: 60 }).map((bytes) => Buffer.from(bytes)),
  fc.tuple(header, fc.uint8Array({ maxLength: 40 })).map(([fields, frames]) => envelope(fields, Buffer.from(frames))),
  fc.tuple(fc.integer({ min: 0, max: 255 }), header).map(([version, fields]) => envelope(fields, Buffer.alloc(0), version))
)

test('malformed backplane messages are dropped', async (t) => {
  const unexpected = collectProcessErrors(t, { uncaught: true })

  const redis = await startRedisServer()
  t.after(() => redis.stop())
  const app = await startInstance(t, {
    backplane: { redis: redis.url, instanceId: INSTANCE_ID },
    hub: {
      maximumInvocationsPerSecond: 10_000,
      methods: {
        Echo: (_context: HubConnectionContext, value: unknown) => value,
        Join: async (context: HubConnectionContext, group: string) => { await context.groups.add(group) }
      }
    }
  })
  const healthy = await connectClient(app, '/testHub')
  t.after(() => healthy.stop())
  await healthy.invoke('Join', 'g')
  const received = new Received(healthy, 'news')
  const publisher = new Redis({ host: '127.0.0.1', port: redis.port, lazyConnect: true })
  await publisher.connect()
  t.after(() => { publisher.disconnect() })

  const channels = [
    'fastify-backplane:8:/testHub:all',
    'fastify-backplane:8:/testHub:group:g',
    `fastify-backplane:instance:${INSTANCE_ID}`
  ]
  let round = 0
  await fc.assert(fc.asyncProperty(fc.constantFrom(...channels), payload, async (channel, bytes) => {
    await publisher.publish(channel, bytes)
    const tag = `round ${round++}`
    assert.equal(await healthy.invoke('Echo', tag), tag)
    assert.deepEqual(unexpected, [])
  }), { numRuns: 300 })

  // Broadcasts still arrive after all that.
  await app.broadcast('news', ['after fuzzing'])
  assert.deepEqual((await received.waitFor(1)).at(-1), ['after fuzzing'])
})
