import assert from 'node:assert/strict'
import { test } from 'node:test'
import { HubConnectionState } from '@microsoft/signalr'
import { MAX_NOTE_LENGTH } from '../src/note-hub.js'
import type { Note } from '../src/notes.js'
import { connectClient, NoteInbox, startApp } from './helpers.js'

const invalidCalls: Array<{ name: string, method: string, args: unknown[], message: string }> = [
  { name: 'empty text', method: 'AddNote', args: ['board', ''], message: 'HubException: Note text is empty. Type some text before adding the note.' },
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
  { name: 'oversized board id', method: 'JoinBoard', args: ['b'.repeat(65)], message: `HubException: Board id "${'b'.repeat(40)}…" is invalid.` }
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

  const inbox = new NoteInbox(client)
  await client.invoke('JoinBoard', 'board')
  const note = await client.invoke<Note>('AddNote', 'board', 'x'.repeat(MAX_NOTE_LENGTH))
  assert.equal(note.text.length, MAX_NOTE_LENGTH, 'text of exactly the maximum length is accepted')
  assert.deepEqual(await inbox.waitFor(1), [note])
  assert.deepEqual(await client.invoke('JoinBoard', 'board'), [note], 'no rejected note was stored')
})
