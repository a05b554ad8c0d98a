import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Redis } from 'ioredis'
import type { FastifyInstance } from 'fastify'
import { decodeEnvelope, encodeEnvelope, ENVELOPE_VERSION, invocationHeaderStart, isInvocationFrom } from '../src/backplane/envelope.js'
import type { InvocationEnvelope } from '../src/backplane/envelope.js'
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

test('own echo recognised by its prefix', () => {
  const frames = new Map([['json', Buffer.from('{"type":1}\u001e')]])
  // Keys in another order than the encoder writes them: the header must not depend on it.
  const envelope = { frames, except: [], target: { kind: 'all' }, hub: '/h', id: 3, origin: 'web.1#abc', type: 'invocation' } satisfies InvocationEnvelope
  const encoded = encodeEnvelope(envelope)
  assert.equal(isInvocationFrom(encoded, invocationHeaderStart('web.1#abc')), true)

  // An origin that the sender's origin starts with, or that starts with it, is another process.
  assert.equal(isInvocationFrom(encoded, invocationHeaderStart('web.1#ab')), false)
  assert.equal(isInvocationFrom(encodeEnvelope({ ...envelope, origin: 'web.1#abcd' }), invocationHeaderStart('web.1#abc')), false)
  // A probe from the same origin is not an invocation: the sender must receive it.
  assert.equal(isInvocationFrom(encodeEnvelope({ type: 'probe', origin: 'web.1#abc', requestId: 1 }), invocationHeaderStart('web.1#abc')), false)
  // An origin that JSON escapes is compared as encoded.
  assert.equal(isInvocationFrom(encodeEnvelope({ ...envelope, origin: 'q"\\é' }), invocationHeaderStart('q"\\é')), true)

  const future = Buffer.from(encoded)
  future[0] = ENVELOPE_VERSION + 1
  assert.equal(isInvocationFrom(future, invocationHeaderStart('web.1#abc')), false)
  assert.equal(isInvocationFrom(encoded.subarray(0, 12), invocationHeaderStart('web.1#abc')), false)
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
