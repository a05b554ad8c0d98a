import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Redis } from 'ioredis'
import type { FastifyInstance } from 'fastify'
import { decodeEnvelope, encodeEnvelope, ENVELOPE_VERSION } from '../src/backplane/envelope.js'
import { startRedisServer } from './helpers/redis-server.js'
import { connectTestClient, startInstances, waitForTag } from './helpers/scale-out.js'

const allChannel = 'fastify-backplane:8:/testHub:all'

test('envelope round trip keeps frames', () => {
  const frames = new Map([['json', Buffer.from('{"type":1}\u001e')], ['messagepack', Buffer.from([1, 2, 3])]])
  const encoded = encodeEnvelope({ type: 'invocation', origin: 'a', id: 7, hub: '/h', target: { kind: 'groups', groups: ['g'] }, except: ['c1'], frames })
  assert.equal(encoded[0], ENVELOPE_VERSION)

  const decoded = decodeEnvelope(encoded)
  assert.equal(decoded.type, 'invocation')
  if (decoded.type !== 'invocation') return
  assert.deepEqual(decoded.target, { kind: 'groups', groups: ['g'] })
  assert.deepEqual(decoded.except, ['c1'])
  assert.deepEqual([...decoded.frames.keys()], ['json', 'messagepack'])
  assert.deepEqual(decoded.frames.get('messagepack'), Buffer.from([1, 2, 3]))
})

test('unknown versions and garbage are dropped', async (t) => {
  const redis = await startRedisServer()
  t.after(() => redis.stop())
  const [a] = await startInstances(t, 1, () => ({ redis: redis.url })) as [FastifyInstance]
  const client = await connectTestClient(t, a, 'client', undefined)
  const rogue = new Redis(redis.port, '127.0.0.1')
  t.after(() => rogue.disconnect())

  // A later release's envelope: version byte 2, otherwise well formed.
  const future = encodeEnvelope({ type: 'invocation', origin: 'future', id: 1, hub: '/testHub', target: { kind: 'all' }, except: [], frames: new Map([['json', Buffer.from('{"type":1,"target":"m","arguments":["from the future"]}\u001e')]]) })
  future[0] = ENVELOPE_VERSION + 1
  await rogue.publish(allChannel, future)
  await rogue.publish(allChannel, Buffer.from('not an envelope'))
  await rogue.publish(allChannel, Buffer.from([ENVELOPE_VERSION, 0, 0, 0, 200, 123]))

  await a.broadcast('m', ['after'])
  await waitForTag([client], 'after')
  assert.deepEqual(client.received, ['after'])
})
