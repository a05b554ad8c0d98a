import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { BoardFullError, NoteNotFoundError, parseNote } from './notes.js'
import type { BoardSnapshot, Note, NoteAdded, NoteDeleted, NoteEdit, NoteEdited, NoteMoved, NoteStore } from './notes.js'

export interface RedisNoteStoreOptions {
  redis: Redis
  /** Prepended to every key, such as `notes-board:`. */
  keyPrefix: string
  maxNotesPerBoard: number
  /** A board's keys expire this many seconds after its last change. */
  boardTtlSeconds: number
  log: FastifyBaseLogger
}

// Each script takes the board's three keys: KEYS[1] the hash with `epoch` and `revision`,
// KEYS[2] the list of note ids, top first, and KEYS[3] the hash of note JSON by id. A script
// runs atomically, so every change reads and bumps the revision with no other change between.
// Every change renews the expiry of all three keys, so they expire together.

/** Returns `epoch`, or a not-found reply when the board does not exist. */
const READ_EPOCH = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return {'not-found', ARGV[1]} end
`

const BUMP_REVISION_AND_EXPIRE = `
local revision = redis.call('HINCRBY', KEYS[1], 'revision', 1)
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[#ARGV]) end
`

/** ARGV: note id, note JSON, maximum notes per board, new epoch, TTL in seconds. */
const ADD_SCRIPT = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  -- A new board, or one whose keys expired: start a new epoch on a clean slate.
  redis.call('DEL', KEYS[2], KEYS[3])
  epoch = ARGV[4]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'revision', 0)
end
if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[3]) then return {'full'} end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
${BUMP_REVISION_AND_EXPIRE}
return {'ok', epoch, revision}
`

/** ARGV: note id, text, edited at, edited instance id, TTL in seconds. Returns the new JSON. */
const EDIT_SCRIPT = `
${READ_EPOCH}
local json = redis.call('HGET', KEYS[3], ARGV[1])
if not json then return {'not-found', ARGV[1]} end
local note = cjson.decode(json)
note.text = ARGV[2]
note.editedAt = ARGV[3]
note.editedInstanceId = ARGV[4]
json = cjson.encode(note)
redis.call('HSET', KEYS[3], ARGV[1], json)
${BUMP_REVISION_AND_EXPIRE}
return {'ok', epoch, revision, json}
`

/** ARGV: note id, id of the note to move above or '' for the bottom, TTL in seconds. */
const MOVE_SCRIPT = `
${READ_EPOCH}
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then return {'not-found', ARGV[1]} end
if ARGV[2] ~= '' and redis.call('HEXISTS', KEYS[3], ARGV[2]) == 0 then return {'not-found', ARGV[2]} end
redis.call('LREM', KEYS[2], 0, ARGV[1])
if ARGV[2] == '' then
  redis.call('RPUSH', KEYS[2], ARGV[1])
else
  redis.call('LINSERT', KEYS[2], 'BEFORE', ARGV[2], ARGV[1])
end
local index = redis.call('LPOS', KEYS[2], ARGV[1])
${BUMP_REVISION_AND_EXPIRE}
return {'ok', epoch, revision, index}
`

/** ARGV: note id, TTL in seconds. */
const DELETE_SCRIPT = `
${READ_EPOCH}
if redis.call('HDEL', KEYS[3], ARGV[1]) == 0 then return {'not-found', ARGV[1]} end
redis.call('LREM', KEYS[2], 0, ARGV[1])
${BUMP_REVISION_AND_EXPIRE}
return {'ok', epoch, revision}
`

type ScriptReply = [status: 'ok', epoch: string, revision: number, extra?: string | number] | [status: 'not-found', noteId: string] | [status: 'full']
type ScriptCommand = (...keysAndArgs: Array<string | number>) => Promise<ScriptReply>

const SCRIPTS = {
  notesBoardAdd: ADD_SCRIPT,
  notesBoardEdit: EDIT_SCRIPT,
  notesBoardMove: MOVE_SCRIPT,
  notesBoardDelete: DELETE_SCRIPT
} as const

/**
 * Keeps each board in three Redis keys: `{keyPrefix}board:{boardId}` (a hash with the epoch and
 * revision), `{keyPrefix}board-order:{boardId}` (a list of note ids, top first) and
 * `{keyPrefix}board-notes:{boardId}` (a hash of note JSON by id). Lua scripts change them
 * atomically, so instances that change a board at the same time still get consecutive
 * revisions. `LPOS` needs Redis 6.0.6 or later.
 */
export class RedisNoteStore implements NoteStore {
  readonly #redis: Redis
  readonly #keyPrefix: string
  readonly #maxNotesPerBoard: number
  readonly #boardTtlSeconds: number
  readonly #log: FastifyBaseLogger

  constructor ({ redis, keyPrefix, maxNotesPerBoard, boardTtlSeconds, log }: RedisNoteStoreOptions) {
    this.#redis = redis
    this.#keyPrefix = keyPrefix
    this.#maxNotesPerBoard = maxNotesPerBoard
    this.#boardTtlSeconds = boardTtlSeconds
    this.#log = log
    // ioredis runs a defined command with EVALSHA and falls back to EVAL once per connection.
    for (const [name, lua] of Object.entries(SCRIPTS)) {
      if (!(name in redis)) redis.defineCommand(name, { lua, numberOfKeys: 3 })
    }
  }

  /**
   * The board's keys. The board id comes last and cannot contain a colon, and each kind of key
   * has its own word, so no board id can produce another board's key.
   */
  keysFor (boardId: string): [meta: string, order: string, notes: string] {
    return [
      `${this.#keyPrefix}board:${boardId}`,
      `${this.#keyPrefix}board-order:${boardId}`,
      `${this.#keyPrefix}board-notes:${boardId}`
    ]
  }

  /** Reads the revision, the order and the notes in one MULTI transaction, so they match. */
  async read (boardId: string): Promise<BoardSnapshot> {
    const [metaKey, orderKey, notesKey] = this.keysFor(boardId)
    const replies = await this.#redis.multi()
      .hmget(metaKey, 'epoch', 'revision')
      .lrange(orderKey, 0, -1)
      .hgetall(notesKey)
      .exec()
    if (replies === null) throw new Error(`Reading board "${boardId}" failed: Redis discarded the transaction.`)
    for (const [err] of replies) {
      if (err !== null) throw err
    }

    const [epoch, revision] = replies[0]![1] as [string | null, string | null]
    const order = replies[1]![1] as string[]
    const entries = replies[2]![1] as Record<string, string>
    if (epoch === null) return { boardId, epoch: null, revision: 0, notes: [] }

    const notes: Note[] = []
    let invalid = 0
    for (const id of order) {
      const note = entries[id] === undefined ? undefined : parseNote(entries[id])
      if (note === undefined) invalid++
      else notes.push(note)
    }
    if (invalid > 0) this.#log.warn({ key: notesKey, invalid }, 'skipped stored notes that are missing or not valid note JSON')
    return { boardId, epoch, revision: Number(revision ?? 0), notes }
  }

  async add (note: Note): Promise<NoteAdded> {
    const reply = await this.#run('notesBoardAdd', note.boardId, [note.id, JSON.stringify(note), this.#maxNotesPerBoard, randomUUID()])
    if (reply[0] === 'full') throw new BoardFullError(note.boardId, this.#maxNotesPerBoard)
    const [epoch, revision] = expectOk(reply, note.boardId)
    return { boardId: note.boardId, epoch, revision, index: 0, note }
  }

  async edit (boardId: string, noteId: string, edit: NoteEdit): Promise<NoteEdited> {
    const reply = await this.#run('notesBoardEdit', boardId, [noteId, edit.text, edit.editedAt, edit.editedInstanceId])
    const [epoch, revision, json] = expectOk(reply, boardId)
    const note = parseNote(String(json))
    if (note === undefined) throw new Error(`Editing note ${noteId} on board "${boardId}" failed: the stored note is not valid note JSON.`)
    return { boardId, epoch, revision, note }
  }

  async move (boardId: string, noteId: string, beforeNoteId: string | null): Promise<NoteMoved> {
    const reply = await this.#run('notesBoardMove', boardId, [noteId, beforeNoteId ?? ''])
    const [epoch, revision, index] = expectOk(reply, boardId)
    return { boardId, epoch, revision, noteId, index: Number(index) }
  }

  async delete (boardId: string, noteId: string): Promise<NoteDeleted> {
    const reply = await this.#run('notesBoardDelete', boardId, [noteId])
    const [epoch, revision] = expectOk(reply, boardId)
    return { boardId, epoch, revision, noteId }
  }

  /** Runs a script on the board's keys, with the TTL appended as the last argument. */
  async #run (script: keyof typeof SCRIPTS, boardId: string, args: Array<string | number>): Promise<ScriptReply> {
    const command = (this.#redis as unknown as Record<string, ScriptCommand>)[script]!
    return await command.call(this.#redis, ...this.keysFor(boardId), ...args, this.#boardTtlSeconds)
  }
}

/** Returns epoch, revision and the optional extra value of an `ok` reply; throws for `not-found`. */
function expectOk (reply: ScriptReply, boardId: string): [epoch: string, revision: number, extra: string | number | undefined] {
  if (reply[0] === 'not-found') throw new NoteNotFoundError(boardId, reply[1])
  if (reply[0] !== 'ok') throw new Error(`Changing board "${boardId}" failed: unexpected script reply ${JSON.stringify(reply)}.`)
  return [reply[1], Number(reply[2]), reply[3]]
}
