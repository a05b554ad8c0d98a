import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Note } from '../src/notes.js'
import { connectClient, NoteInbox, startApp, startRedis } from './helpers.js'

test('note added on B reaches board members on A and B', { timeout: 60_000 }, async (t) => {
  const redis = await startRedis(t)
  const a = await startApp(t, { redisUrl: redis.url, instanceId: 'A' })
  const b = await startApp(t, { redisUrl: redis.url, instanceId: 'B' })

  const memberOnA = await connectClient(t, a)
  const outsiderOnA = await connectClient(t, a)
  const callerOnB = await connectClient(t, b)
  const memberInbox = new NoteInbox(memberOnA)
  const outsiderInbox = new NoteInbox(outsiderOnA)
  const callerInbox = new NoteInbox(callerOnB)

  assert.deepEqual(await memberOnA.invoke('JoinBoard', 'team'), [])
  assert.deepEqual(await outsiderOnA.invoke('JoinBoard', 'other'), [])
  assert.deepEqual(await callerOnB.invoke('JoinBoard', 'team'), [])

  const note = await callerOnB.invoke<Note>('AddNote', 'team', '  Ship the release  ')
  assert.equal(note.boardId, 'team')
  assert.equal(note.text, 'Ship the release', 'the text is stored trimmed')
  assert.equal(note.instanceId, 'B')
  assert.match(note.id, /^[0-9a-f-]{36}$/)
  assert.ok(!Number.isNaN(Date.parse(note.createdAt)), `createdAt ${note.createdAt} is a timestamp`)

  assert.deepEqual(await memberInbox.waitFor(1), [note])
  assert.deepEqual(await callerInbox.waitFor(1), [note])

  // B publishes the second note after the first, and A receives them in publish order, so
  // once the outsider has the second note, it would already have the first if it were sent.
  const otherNote = await callerOnB.invoke<Note>('AddNote', 'other', 'For the other board')
  assert.deepEqual(await outsiderInbox.waitFor(1), [otherNote])
  assert.equal(memberInbox.notes.length, 1, 'the member of "team" receives no note of "other"')
  // B delivers to its own clients before AddNote returns, so this check needs no wait.
  assert.equal(callerInbox.notes.length, 1, 'the caller is not on "other" and receives none of its notes')

  // The notes live in the shared Redis, so a client that joins on A gets the note stored by B.
  const latecomer = await connectClient(t, a)
  assert.deepEqual(await latecomer.invoke('JoinBoard', 'team'), [note])
})

test('JoinBoard on another board leaves the first', { timeout: 60_000 }, async (t) => {
  const redis = await startRedis(t)
  const a = await startApp(t, { redisUrl: redis.url, instanceId: 'A' })
  const b = await startApp(t, { redisUrl: redis.url, instanceId: 'B' })

  const switcher = await connectClient(t, a)
  const writer = await connectClient(t, b)
  const switcherInbox = new NoteInbox(switcher)

  await switcher.invoke('JoinBoard', 'first')
  await switcher.invoke('JoinBoard', 'second')
  await writer.invoke('AddNote', 'first', 'Missed on purpose')
  const second = await writer.invoke<Note>('AddNote', 'second', 'Seen')

  assert.deepEqual(await switcherInbox.waitFor(1), [second])
  assert.equal(switcherInbox.notes.length, 1)
})
