import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Note } from '../src/notes.js'
import { connectClient, NoteInbox, startApp } from './helpers.js'

test('in-process mode delivers notes without Redis', { timeout: 30_000 }, async (t) => {
  const app = await startApp(t, { instanceId: 'solo' })
  assert.equal(app.backplane.transport, 'in-process')

  const writer = await connectClient(t, app)
  const reader = await connectClient(t, app)
  const writerInbox = new NoteInbox(writer)
  const readerInbox = new NoteInbox(reader)
  await writer.invoke('JoinBoard', 'local')
  await reader.invoke('JoinBoard', 'local')

  const note = await writer.invoke<Note>('AddNote', 'local', 'Kept in memory')
  assert.equal(note.instanceId, 'solo')
  assert.deepEqual(await readerInbox.waitFor(1), [note])
  assert.deepEqual(await writerInbox.waitFor(1), [note])

  const latecomer = await connectClient(t, app)
  assert.deepEqual(await latecomer.invoke('JoinBoard', 'local'), [note])
  assert.equal(await latecomer.invoke('GetInstanceId'), 'solo')
})
