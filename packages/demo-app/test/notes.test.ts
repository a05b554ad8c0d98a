import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { FastifyBaseLogger } from 'fastify'
import { Redis } from 'ioredis'
import { MemoryNoteStore, RedisNoteStore } from '../src/notes.js'
import type { Note } from '../src/notes.js'
import { cleanUpAtEnd, startRedis } from './helpers.js'

function makeNote (boardId: string, index: number): Note {
  return {
    id: `note-${index}`,
    boardId,
    text: `Note ${index}`,
    createdAt: new Date(Date.UTC(2025, 0, 1, 0, 0, index)).toISOString(),
    instanceId: 'test'
  }
}

/** Creates a logger that records the fields of each warning, so a test can check them. */
function recordingLogger (warnings: unknown[]): FastifyBaseLogger {
  const noop = (): void => {}
  const logger = {
    level: 'info',
    fatal: noop,
    error: noop,
    warn: (fields: unknown) => { warnings.push(fields) },
    info: noop,
    debug: noop,
    trace: noop,
    silent: noop,
    child: () => logger
  }
  return logger as unknown as FastifyBaseLogger
}

test('memory store keeps the newest notes', async () => {
  const store = new MemoryNoteStore({ maxNotesPerBoard: 3, maxBoards: 10 })
  for (let i = 1; i <= 5; i++) await store.add(makeNote('capped', i))

  assert.deepEqual(await store.list('capped'), [makeNote('capped', 3), makeNote('capped', 4), makeNote('capped', 5)])
  assert.deepEqual(await store.list('unknown'), [])
})

test('memory store drops least recently written board', async () => {
  const store = new MemoryNoteStore({ maxNotesPerBoard: 10, maxBoards: 2 })
  await store.add(makeNote('one', 1))
  await store.add(makeNote('two', 2))
  await store.add(makeNote('one', 3))
  await store.add(makeNote('three', 4))

  assert.deepEqual(await store.list('two'), [], 'board "two" was written least recently')
  assert.deepEqual(await store.list('one'), [makeNote('one', 1), makeNote('one', 3)])
  assert.deepEqual(await store.list('three'), [makeNote('three', 4)])
})

test('memory store list is a copy', async () => {
  const store = new MemoryNoteStore({ maxNotesPerBoard: 10, maxBoards: 10 })
  await store.add(makeNote('board', 1))
  const listed = await store.list('board')
  listed.pop()
  assert.equal((await store.list('board')).length, 1)
})

test('Redis store caps, expires and skips bad entries', { timeout: 30_000 }, async (t) => {
  const server = await startRedis(t)
  const redis = new Redis(server.url)
  cleanUpAtEnd(t, () => redis.quit())
  const warnings: unknown[] = []
  const store = new RedisNoteStore({
    redis,
    keyPrefix: 'test-prefix:',
    maxNotesPerBoard: 3,
    boardTtlSeconds: 600,
    log: recordingLogger(warnings)
  })

  for (let i = 1; i <= 5; i++) await store.add(makeNote('capped', i))
  assert.deepEqual(await store.list('capped'), [makeNote('capped', 3), makeNote('capped', 4), makeNote('capped', 5)])
  assert.deepEqual(await store.list('unknown'), [])

  const key = 'test-prefix:notes:capped'
  assert.equal(store.keyFor('capped'), key)
  assert.equal(await redis.llen(key), 3)
  const ttl = await redis.ttl(key)
  assert.ok(ttl > 0, `TTL ${ttl} s is set`)
  assert.ok(ttl <= 600, `TTL ${ttl} s is at most the configured 600 s`)

  await redis.rpush(key, 'not JSON', JSON.stringify({ id: 'incomplete' }))
  assert.deepEqual(await store.list('capped'), [makeNote('capped', 3), makeNote('capped', 4), makeNote('capped', 5)])
  assert.deepEqual(warnings, [{ key, invalid: 2 }])
})
