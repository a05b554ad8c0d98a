import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import type { FastifyBaseLogger } from 'fastify'
import { Redis } from 'ioredis'
import { MemoryNoteStore } from '../src/memory-note-store.js'
import { BoardFullError, NoteNotFoundError } from '../src/notes.js'
import type { Note, NoteStore } from '../src/notes.js'
import { RedisNoteStore } from '../src/redis-note-store.js'
import { cleanUpAtEnd, startRedis } from './helpers.js'

function makeNote (boardId: string, index: number): Note {
  return {
    id: randomUUID(),
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

async function texts (store: NoteStore, boardId: string): Promise<string[]> {
  return (await store.read(boardId)).notes.map((note) => note.text)
}

/** Each store kind, created with a per-board maximum of `maxNotesPerBoard`. */
const storeKinds: Array<{ name: string, create: (t: TestContext, maxNotesPerBoard: number) => Promise<NoteStore> }> = [
  {
    name: 'memory',
    create: async (_t, maxNotesPerBoard) => new MemoryNoteStore({ maxNotesPerBoard, maxBoards: 10 })
  },
  {
    name: 'Redis',
    create: async (t, maxNotesPerBoard) => {
      const server = await startRedis(t)
      const redis = new Redis(server.url)
      cleanUpAtEnd(t, () => redis.quit())
      return new RedisNoteStore({ redis, keyPrefix: 'test:', maxNotesPerBoard, boardTtlSeconds: 600, log: recordingLogger([]) })
    }
  }
]

for (const kind of storeKinds) {
  test(`${kind.name} store adds on top with revisions`, { timeout: 30_000 }, async (t) => {
    const store = await kind.create(t, 10)
    assert.deepEqual(await store.read('fresh'), { boardId: 'fresh', epoch: null, revision: 0, notes: [] })

    const first = makeNote('fresh', 1)
    const added = await store.add(first)
    assert.equal(added.boardId, 'fresh')
    assert.equal(added.revision, 1)
    assert.equal(added.index, 0)
    assert.deepEqual(added.note, first)
    assert.match(added.epoch, /^[0-9a-f-]{36}$/)

    const second = await store.add(makeNote('fresh', 2))
    assert.equal(second.revision, 2)
    assert.equal(second.epoch, added.epoch, 'the epoch stays while the board exists')

    const snapshot = await store.read('fresh')
    assert.equal(snapshot.epoch, added.epoch)
    assert.equal(snapshot.revision, 2)
    assert.deepEqual(snapshot.notes.map((note) => note.text), ['Note 2', 'Note 1'], 'newest on top')
  })

  test(`${kind.name} store edits, moves and deletes`, { timeout: 30_000 }, async (t) => {
    const store = await kind.create(t, 10)
    const [a, b, c] = [makeNote('board', 1), makeNote('board', 2), makeNote('board', 3)]
    for (const note of [a, b, c]) await store.add(note)
    assert.deepEqual(await texts(store, 'board'), ['Note 3', 'Note 2', 'Note 1'])

    const edited = await store.edit('board', b.id, { text: 'Note 2, edited', editedAt: '2025-02-01T00:00:00.000Z', editedInstanceId: 'web.2' })
    assert.equal(edited.revision, 4)
    assert.deepEqual(edited.note, { ...b, text: 'Note 2, edited', editedAt: '2025-02-01T00:00:00.000Z', editedInstanceId: 'web.2' })
    assert.deepEqual((await store.read('board')).notes[1], edited.note, 'the edit is stored')

    const toBottom = await store.move('board', c.id, null)
    assert.deepEqual({ revision: toBottom.revision, noteId: toBottom.noteId, index: toBottom.index }, { revision: 5, noteId: c.id, index: 2 })
    assert.deepEqual(await texts(store, 'board'), ['Note 2, edited', 'Note 1', 'Note 3'])

    const toTop = await store.move('board', a.id, b.id)
    assert.deepEqual({ revision: toTop.revision, index: toTop.index }, { revision: 6, index: 0 })
    assert.deepEqual(await texts(store, 'board'), ['Note 1', 'Note 2, edited', 'Note 3'])

    const down = await store.move('board', a.id, c.id)
    assert.equal(down.index, 1, 'moving above the note below the next one moves down one place')
    assert.deepEqual(await texts(store, 'board'), ['Note 2, edited', 'Note 1', 'Note 3'])

    const deleted = await store.delete('board', b.id)
    assert.deepEqual({ revision: deleted.revision, noteId: deleted.noteId }, { revision: 8, noteId: b.id })
    const snapshot = await store.read('board')
    assert.equal(snapshot.revision, 8)
    assert.deepEqual(snapshot.notes.map((note) => note.text), ['Note 1', 'Note 3'])
  })

  test(`${kind.name} store rejects missing notes`, { timeout: 30_000 }, async (t) => {
    const store = await kind.create(t, 10)
    const note = makeNote('board', 1)
    const missing = randomUUID()
    const isNotFound = (noteId: string, boardId = 'board') => (err: unknown) => {
      assert.ok(err instanceof NoteNotFoundError, String(err))
      assert.equal(err.noteId, noteId)
      assert.equal(err.message, `Note ${noteId} is not on board "${boardId}". Someone may have deleted it.`)
      return true
    }

    await assert.rejects(store.edit('board', missing, { text: 'x', editedAt: '', editedInstanceId: '' }), isNotFound(missing), 'edit on an unknown board')
    await store.add(note)
    await assert.rejects(store.edit('board', missing, { text: 'x', editedAt: '', editedInstanceId: '' }), isNotFound(missing), 'edit')
    await assert.rejects(store.move('board', missing, null), isNotFound(missing), 'move of a missing note')
    await assert.rejects(store.move('board', note.id, missing), isNotFound(missing), 'move above a missing note')
    await assert.rejects(store.delete('board', missing), isNotFound(missing), 'delete')
    await assert.rejects(store.delete('other', note.id), isNotFound(note.id, 'other'), 'delete on another board')

    const snapshot = await store.read('board')
    assert.equal(snapshot.revision, 1, 'failed changes do not count')
    assert.deepEqual(snapshot.notes, [note])
  })

  test(`${kind.name} store rejects past the per-board maximum`, { timeout: 30_000 }, async (t) => {
    const store = await kind.create(t, 3)
    for (let i = 1; i <= 3; i++) await store.add(makeNote('capped', i))

    await assert.rejects(store.add(makeNote('capped', 4)), (err: unknown) => {
      assert.ok(err instanceof BoardFullError)
      assert.equal(err.message, 'Board "capped" is full: it has 3 notes, the maximum. Delete a note before adding another.')
      return true
    })
    assert.deepEqual(await texts(store, 'capped'), ['Note 3', 'Note 2', 'Note 1'])
    assert.equal((await store.read('capped')).revision, 3)

    const [, , oldest] = (await store.read('capped')).notes
    await store.delete('capped', oldest!.id)
    await store.add(makeNote('capped', 5))
    assert.deepEqual(await texts(store, 'capped'), ['Note 5', 'Note 3', 'Note 2'], 'a deleted note makes room')
  })

  test(`${kind.name} store numbers concurrent changes`, { timeout: 30_000 }, async (t) => {
    const store = await kind.create(t, 100)
    const results = await Promise.all(Array.from({ length: 40 }, async (_, i) => await store.add(makeNote('busy', i))))
    assert.deepEqual(results.map((change) => change.revision).sort((x, y) => x - y), Array.from({ length: 40 }, (_, i) => i + 1))
    assert.equal(new Set(results.map((change) => change.epoch)).size, 1)
    assert.equal((await store.read('busy')).notes.length, 40)
  })
}

test('memory store drops least recently written board', async () => {
  const store = new MemoryNoteStore({ maxNotesPerBoard: 10, maxBoards: 2 })
  const one = await store.add(makeNote('one', 1))
  await store.add(makeNote('two', 2))
  await store.add(makeNote('one', 3))
  await store.add(makeNote('three', 4))

  assert.deepEqual(await store.read('two'), { boardId: 'two', epoch: null, revision: 0, notes: [] }, 'board "two" was written least recently')
  assert.deepEqual(await texts(store, 'one'), ['Note 3', 'Note 1'])
  assert.deepEqual(await texts(store, 'three'), ['Note 4'])

  // A dropped board that is written again starts a new epoch, so clients know to reload it.
  await store.add(makeNote('four', 5))
  const again = await store.add(makeNote('one', 6))
  assert.equal(again.revision, 1)
  assert.notEqual(again.epoch, one.epoch)
})

test('memory store returns copies', async () => {
  const store = new MemoryNoteStore({ maxNotesPerBoard: 10, maxBoards: 10 })
  const added = await store.add(makeNote('board', 1))
  added.note.text = 'changed by the caller'
  const snapshot = await store.read('board')
  snapshot.notes[0]!.text = 'changed again'
  snapshot.notes.pop()
  assert.deepEqual(await texts(store, 'board'), ['Note 1'])
})

test('Redis store expires boards and skips bad entries', { timeout: 30_000 }, async (t) => {
  const server = await startRedis(t)
  const redis = new Redis(server.url)
  cleanUpAtEnd(t, () => redis.quit())
  const warnings: unknown[] = []
  const store = new RedisNoteStore({ redis, keyPrefix: 'test-prefix:', maxNotesPerBoard: 10, boardTtlSeconds: 600, log: recordingLogger(warnings) })

  const first = makeNote('board', 1)
  const added = await store.add(first)
  await store.add(makeNote('board', 2))
  const keys = store.keysFor('board')
  assert.deepEqual(keys, ['test-prefix:board:board', 'test-prefix:board-order:board', 'test-prefix:board-notes:board'])
  for (const key of keys) {
    const ttl = await redis.ttl(key)
    assert.ok(ttl > 0, `TTL of ${key} is ${ttl} s, expected a positive TTL`)
    assert.ok(ttl <= 600, `TTL of ${key} is ${ttl} s, expected at most the configured 600 s`)
  }

  // An id in the order list without a note, and a note that is not valid JSON, are skipped.
  await redis.lpush(keys[1], 'no-such-note', 'broken')
  await redis.hset(keys[2], 'broken', 'not JSON')
  assert.deepEqual(await texts(store, 'board'), ['Note 2', 'Note 1'])
  assert.deepEqual(warnings, [{ key: keys[2], invalid: 2 }])

  // Keys that expired, simulated by deleting them, start a new epoch on the next note.
  await redis.del(...keys)
  const recreated = await store.add(makeNote('board', 3))
  assert.equal(recreated.revision, 1)
  assert.notEqual(recreated.epoch, added.epoch)
  assert.deepEqual(await texts(store, 'board'), ['Note 3'])
  await assert.rejects(store.edit('board', first.id, { text: 'x', editedAt: '', editedInstanceId: '' }), NoteNotFoundError)
})

test('Redis store keeps Unicode and JSON text intact', { timeout: 30_000 }, async (t) => {
  const server = await startRedis(t)
  const redis = new Redis(server.url)
  cleanUpAtEnd(t, () => redis.quit())
  const store = new RedisNoteStore({ redis, keyPrefix: 'test:', maxNotesPerBoard: 10, boardTtlSeconds: 600, log: recordingLogger([]) })

  const note = makeNote('board', 1)
  await store.add(note)
  // The edit script re-encodes the stored JSON with Redis's cjson, which escapes "/" and
  // handles UTF-8 byte by byte.
  const text = 'Ünïcödé 🎉 "quotes" </script> back\\slash\nnew line'
  const edited = await store.edit('board', note.id, { text, editedAt: '2025-02-01T00:00:00.000Z', editedInstanceId: 'web.1' })
  assert.equal(edited.note.text, text)
  assert.equal((await store.read('board')).notes[0]!.text, text)
})
