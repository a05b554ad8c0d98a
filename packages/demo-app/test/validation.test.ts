import assert from 'node:assert/strict'
import { test } from 'node:test'
import { HubConnectionState } from '@microsoft/signalr'
import { MAX_NOTE_LENGTH } from '../src/note-hub.js'
import type { NoteAdded } from '../src/notes.js'
import { connectClient, startApp } from './helpers.js'

const NOTE_ID = '0b4e7a0e-5d2c-4b9e-9a51-3d1f0c7e2a10'

const invalidCalls: Array<{ name: string, method: string, args: unknown[], message: string }> = [
  { name: 'empty text', method: 'AddNote', args: ['board', ''], message: 'HubException: Note text is empty. Type some text first.' },
  { name: 'whitespace-only text', method: 'AddNote', args: ['board', ' \n\t '], message: 'HubException: Note text is empty.' },
  { name: 'oversized text', method: 'AddNote', args: ['board', 'x'.repeat(MAX_NOTE_LENGTH + 1)], message: `HubException: Note text is too long: ${MAX_NOTE_LENGTH + 1} characters, the maximum is ${MAX_NOTE_LENGTH}.` },
  { name: 'numeric text', method: 'AddNote', args: ['board', 42], message: 'HubException: Note text must be a string, got number.' },
  { name: 'missing text', method: 'AddNote', args: ['board'], message: 'HubException: Note text must be a string, got undefined.' },
  { name: 'numeric board id', method: 'AddNote', args: [7, 'text'], message: 'HubException: Board id must be a string, got number.' },
  { name: 'null board id', method: 'JoinBoard', args: [null], message: 'HubException: Board id must be a string, got null.' },
  { name: 'array board id', method: 'JoinBoard', args: [['a']], message: 'HubException: Board id must be a string, got an array.' },
  { name: 'empty board id', method: 'JoinBoard', args: [''], message: 'HubException: Board id "" is invalid. Use 1 to 64 letters, digits, "-" or "_".' },
  { name: 'board id with a space', method: 'JoinBoard', args: ['my board'], message: 'HubException: Board id "my board" is invalid.' },
  { name: 'board id with a colon', method: 'AddNote', args: ['a:b', 'text'], message: 'HubException: Board id "a:b" is invalid.' },
  { name: 'oversized board id', method: 'JoinBoard', args: ['b'.repeat(65)], message: `HubException: Board id "${'b'.repeat(40)}…" is invalid.` },
  { name: 'numeric note id', method: 'EditNote', args: ['board', 5, 'text'], message: 'HubException: Note id must be a string, got number.' },
  { name: 'note id that is no UUID', method: 'DeleteNote', args: ['board', 'note-1'], message: 'HubException: Note id "note-1" is invalid. Use the id of a note on the board, a lowercase UUID.' },
  { name: 'uppercase note id', method: 'DeleteNote', args: ['board', NOTE_ID.toUpperCase()], message: `HubException: Note id "${NOTE_ID.toUpperCase()}" is invalid.` },
  { name: 'empty edit text', method: 'EditNote', args: ['board', NOTE_ID, '  '], message: 'HubException: Note text is empty.' },
  { name: 'missing move target', method: 'MoveNote', args: ['board', NOTE_ID], message: 'HubException: The note to move above must be a note id, or null for the bottom of the board, got undefined.' },
  { name: 'numeric move target', method: 'MoveNote', args: ['board', NOTE_ID, 3], message: 'HubException: The note to move above must be a note id, or null for the bottom of the board, got number.' },
  { name: 'invalid move target', method: 'MoveNote', args: ['board', NOTE_ID, 'top'], message: 'HubException: The note to move above "top" is invalid.' },
  { name: 'move above itself', method: 'MoveNote', args: ['board', NOTE_ID, NOTE_ID], message: 'HubException: A note cannot move above itself. Pass the id of another note, or null to move it to the bottom.' },
  { name: 'edit of a missing note', method: 'EditNote', args: ['board', NOTE_ID, 'text'], message: `HubException: Note ${NOTE_ID} is not on board "board". Someone may have deleted it.` },
  { name: 'move of a missing note', method: 'MoveNote', args: ['board', NOTE_ID, null], message: `HubException: Note ${NOTE_ID} is not on board "board".` },
  { name: 'delete of a missing note', method: 'DeleteNote', args: ['board', NOTE_ID], message: `HubException: Note ${NOTE_ID} is not on board "board".` }
]

test('invalid input rejects with HubException messages', { timeout: 30_000 }, async (t) => {
  const app = await startApp(t)
  const client = await connectClient(t, app)

  for (const call of invalidCalls) {
    await assert.rejects(
      client.invoke(call.method, ...call.args),
      (err: Error) => {
        assert.ok(err.message.includes(call.message), `${call.name}: expected "${call.message}" in "${err.message}"`)
        return true
      },
      call.name
    )
    assert.equal(client.state, HubConnectionState.Connected, `the connection stays open after ${call.name}`)
  }

  await client.invoke('JoinBoard', 'board')
  const added = await client.invoke<NoteAdded>('AddNote', 'board', 'x'.repeat(MAX_NOTE_LENGTH))
  assert.equal(added.note.text.length, MAX_NOTE_LENGTH, 'text of exactly the maximum length is accepted')
  const snapshot = await client.invoke<{ revision: number, notes: unknown[] }>('JoinBoard', 'board')
  assert.equal(snapshot.revision, 1, 'no rejected call changed the board')
  assert.deepEqual(snapshot.notes, [added.note])
})

test('full board rejects AddNote', { timeout: 30_000 }, async (t) => {
  const app = await startApp(t, { maxNotesPerBoard: 2 })
  const client = await connectClient(t, app)
  await client.invoke('AddNote', 'small', 'One')
  await client.invoke('AddNote', 'small', 'Two')

  await assert.rejects(client.invoke('AddNote', 'small', 'Three'), (err: Error) => {
    assert.ok(err.message.includes('HubException: Board "small" is full: it has 2 notes, the maximum. Delete a note before adding another.'), err.message)
    return true
  })
  assert.equal(client.state, HubConnectionState.Connected)
})
