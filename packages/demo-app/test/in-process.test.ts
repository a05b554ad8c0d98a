import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { NoteAdded } from '../src/notes.js'
import { BoardInbox, connectClient, startApp } from './helpers.js'

test('in-process mode delivers notes without Redis', { timeout: 30_000 }, async (t) => {
  const app = await startApp(t, { instanceId: 'solo' })
  assert.equal(app.backplane.transport, 'in-process')

  const writer = await connectClient(t, app)
  const reader = await connectClient(t, app)
  const writerInbox = new BoardInbox(writer)
  const readerInbox = new BoardInbox(reader)
  await writer.invoke('JoinBoard', 'local')
  await reader.invoke('JoinBoard', 'local')

  const added = await writer.invoke<NoteAdded>('AddNote', 'local', 'Kept in memory')
  assert.equal(added.note.instanceId, 'solo')
  assert.deepEqual(await readerInbox.waitForChanges(1), [{ method: 'NoteAdded', change: added }])
  assert.deepEqual(await writerInbox.waitForChanges(1), [{ method: 'NoteAdded', change: added }])
  assert.deepEqual(await readerInbox.waitForPresence((presence) => presence.connections === 2),
    { boardId: 'local', connections: 2, instances: 1, complete: true })

  const latecomer = await connectClient(t, app)
  assert.deepEqual(await latecomer.invoke('JoinBoard', 'local'), { boardId: 'local', epoch: added.epoch, revision: 1, notes: [added.note] })
  const info = await latecomer.invoke<{ instanceId: string, connectionId: string }>('GetConnectionInfo')
  assert.equal(info.instanceId, 'solo')
  assert.match(info.connectionId, /^\S{10,}$/)
})
