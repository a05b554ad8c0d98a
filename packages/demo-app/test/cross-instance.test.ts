import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { BoardSnapshot, Note, NoteAdded, NoteDeleted, NoteEdited, NoteMoved } from '../src/notes.js'
import { BoardInbox, connectClient, startApp, startRedis } from './helpers.js'

test('note added on B reaches board members on A and B', { timeout: 60_000 }, async (t) => {
  const redis = await startRedis(t)
  const a = await startApp(t, { redisUrl: redis.url, instanceId: 'A' })
  const b = await startApp(t, { redisUrl: redis.url, instanceId: 'B' })

  const memberOnA = await connectClient(t, a)
  const outsiderOnA = await connectClient(t, a)
  const callerOnB = await connectClient(t, b)
  const memberInbox = new BoardInbox(memberOnA)
  const outsiderInbox = new BoardInbox(outsiderOnA)
  const callerInbox = new BoardInbox(callerOnB)

  const empty: BoardSnapshot = { boardId: 'team', epoch: null, revision: 0, notes: [] }
  assert.deepEqual(await memberOnA.invoke('JoinBoard', 'team'), empty)
  assert.deepEqual(await outsiderOnA.invoke('JoinBoard', 'other'), { ...empty, boardId: 'other' })
  assert.deepEqual(await callerOnB.invoke('JoinBoard', 'team'), empty)

  const added = await callerOnB.invoke<NoteAdded>('AddNote', 'team', '  Ship the release  ')
  const note = added.note
  assert.equal(added.revision, 1)
  assert.equal(added.index, 0)
  assert.equal(note.boardId, 'team')
  assert.equal(note.text, 'Ship the release', 'the text is stored trimmed')
  assert.equal(note.instanceId, 'B')
  assert.match(note.id, /^[0-9a-f-]{36}$/)
  assert.ok(!Number.isNaN(Date.parse(note.createdAt)), `createdAt ${note.createdAt} is a timestamp`)

  assert.deepEqual(await memberInbox.waitForChanges(1), [{ method: 'NoteAdded', change: added }])
  assert.deepEqual(await callerInbox.waitForChanges(1), [{ method: 'NoteAdded', change: added }])

  // B publishes the second note after the first, and A receives them in publish order, so
  // once the outsider has the second note, it would already have the first if it were sent.
  const otherNote = await callerOnB.invoke<NoteAdded>('AddNote', 'other', 'For the other board')
  assert.deepEqual(await outsiderInbox.waitForChanges(1), [{ method: 'NoteAdded', change: otherNote }])
  assert.equal(memberInbox.changes.length, 1, 'the member of "team" receives no change of "other"')
  // B delivers to its own clients before AddNote returns, so this check needs no wait.
  assert.equal(callerInbox.changes.length, 1, 'the caller is not on "other" and receives none of its changes')

  // The notes live in the shared Redis, so a client that joins on A gets the note stored by B.
  const latecomer = await connectClient(t, a)
  assert.deepEqual(await latecomer.invoke('JoinBoard', 'team'), { boardId: 'team', epoch: added.epoch, revision: 1, notes: [note] })
})

test('edit, move and delete reach every instance', { timeout: 60_000 }, async (t) => {
  const redis = await startRedis(t)
  const a = await startApp(t, { redisUrl: redis.url, instanceId: 'A' })
  const b = await startApp(t, { redisUrl: redis.url, instanceId: 'B' })
  const onA = await connectClient(t, a)
  const onB = await connectClient(t, b)
  const inboxOnA = new BoardInbox(onA)
  await onA.invoke('JoinBoard', 'plan')
  await onB.invoke('JoinBoard', 'plan')

  const first = (await onB.invoke<NoteAdded>('AddNote', 'plan', 'First')).note
  const second = (await onB.invoke<NoteAdded>('AddNote', 'plan', 'Second')).note
  const edited = await onB.invoke<NoteEdited>('EditNote', 'plan', first.id, 'First, edited')
  const moved = await onB.invoke<NoteMoved>('MoveNote', 'plan', first.id, second.id)
  const deleted = await onB.invoke<NoteDeleted>('DeleteNote', 'plan', second.id)

  assert.equal(edited.note.text, 'First, edited')
  assert.equal(edited.note.editedInstanceId, 'B')
  assert.ok(!Number.isNaN(Date.parse(edited.note.editedAt ?? '')), 'editedAt is a timestamp')
  assert.equal(edited.note.createdAt, first.createdAt, 'an edit keeps createdAt')
  assert.deepEqual({ noteId: moved.noteId, index: moved.index }, { noteId: first.id, index: 0 })
  assert.equal(deleted.noteId, second.id)

  const received = await inboxOnA.waitForChanges(5)
  assert.deepEqual(received.map(({ method }) => method), ['NoteAdded', 'NoteAdded', 'NoteEdited', 'NoteMoved', 'NoteDeleted'])
  assert.deepEqual(received.map(({ change }) => change.revision), [1, 2, 3, 4, 5])
  assert.deepEqual(received.slice(2).map(({ change }) => change), [edited, moved, deleted])

  const snapshot = await onA.invoke<BoardSnapshot>('JoinBoard', 'plan')
  assert.equal(snapshot.revision, 5)
  assert.deepEqual(snapshot.notes, [edited.note])
})

test('concurrent changes get consecutive revisions', { timeout: 60_000 }, async (t) => {
  const redis = await startRedis(t)
  const a = await startApp(t, { redisUrl: redis.url, instanceId: 'A' })
  const b = await startApp(t, { redisUrl: redis.url, instanceId: 'B' })
  const writers = [await connectClient(t, a), await connectClient(t, a), await connectClient(t, b), await connectClient(t, b)]
  const observer = await connectClient(t, a)
  const inbox = new BoardInbox(observer)
  await observer.invoke('JoinBoard', 'busy')

  await Promise.all(writers.flatMap((writer, w) => Array.from({ length: 5 }, async (_, i) => await writer.invoke('AddNote', 'busy', `Writer ${w} note ${i}`))))

  const received = await inbox.waitForChanges(20)
  assert.deepEqual(received.map(({ change }) => change.revision).sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i + 1))
  const snapshot = await observer.invoke<BoardSnapshot>('JoinBoard', 'busy')
  assert.equal(snapshot.revision, 20)
  assert.equal(snapshot.notes.length, 20)
})

test('presence counts board members across instances', { timeout: 60_000 }, async (t) => {
  const redis = await startRedis(t)
  const a = await startApp(t, { redisUrl: redis.url, instanceId: 'A' })
  const b = await startApp(t, { redisUrl: redis.url, instanceId: 'B' })
  const onA = await connectClient(t, a)
  const onB = await connectClient(t, b)
  const elsewhere = await connectClient(t, b)
  const inboxOnA = new BoardInbox(onA)

  await elsewhere.invoke('JoinBoard', 'other-board')
  await onA.invoke('JoinBoard', 'standup')
  assert.deepEqual(await inboxOnA.waitForPresence((presence) => presence.connections === 1),
    { boardId: 'standup', connections: 1, instances: 2, complete: true })

  await onB.invoke('JoinBoard', 'standup')
  assert.deepEqual(await inboxOnA.waitForPresence((presence) => presence.connections === 2),
    { boardId: 'standup', connections: 2, instances: 2, complete: true })

  // Leaving by closing the connection counts too.
  await onB.stop()
  const afterLeave = inboxOnA.presence.length
  await inboxOnA.waitForPresence((presence) => presence.connections === 1 && inboxOnA.presence.indexOf(presence) >= afterLeave)
  assert.ok(inboxOnA.presence.every((presence) => presence.boardId === 'standup'), 'no presence of other boards arrives')
})

test('JoinBoard on another board leaves the first', { timeout: 60_000 }, async (t) => {
  const redis = await startRedis(t)
  const a = await startApp(t, { redisUrl: redis.url, instanceId: 'A' })
  const b = await startApp(t, { redisUrl: redis.url, instanceId: 'B' })

  const switcher = await connectClient(t, a)
  const writer = await connectClient(t, b)
  const switcherInbox = new BoardInbox(switcher)

  await switcher.invoke('JoinBoard', 'first')
  await switcher.invoke('JoinBoard', 'second')
  await writer.invoke('AddNote', 'first', 'Missed on purpose')
  const second = await writer.invoke<NoteAdded>('AddNote', 'second', 'Seen')

  assert.deepEqual(await switcherInbox.waitForChanges(1), [{ method: 'NoteAdded', change: second }])
  assert.equal(switcherInbox.changes.length, 1)
  const notes: Note[] = switcherInbox.addedNotes
  assert.deepEqual(notes.map((note) => note.text), ['Seen'])
})
