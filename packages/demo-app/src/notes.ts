import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'

/** A note on a board, as stored and as sent to clients. */
export interface Note {
  /** A random UUID. */
  id: string
  boardId: string
  text: string
  /** When the note was stored, as an ISO 8601 timestamp in UTC. */
  createdAt: string
  /** The instance that stored the note, such as Heroku's `web.1`. */
  instanceId: string
}

/** Storage for the notes of every board. Each board keeps only its newest notes. */
export interface NoteStore {
  add (note: Note): Promise<void>
  /** Returns the board's notes, oldest first, or an empty array for an unknown board. */
  list (boardId: string): Promise<Note[]>
}

export interface MemoryNoteStoreOptions {
  maxNotesPerBoard: number
  /** Past this many boards, the board written to least recently is dropped. */
  maxBoards: number
}

/**
 * Keeps notes in this process, for a single instance without Redis. Notes are lost on
 * restart, and other instances cannot see them.
 */
export class MemoryNoteStore implements NoteStore {
  readonly #maxNotesPerBoard: number
  readonly #maxBoards: number
  /** Boards in order of their last write, least recent first. */
  readonly #boards = new Map<string, Note[]>()

  constructor ({ maxNotesPerBoard, maxBoards }: MemoryNoteStoreOptions) {
    this.#maxNotesPerBoard = maxNotesPerBoard
    this.#maxBoards = maxBoards
  }

  async add (note: Note): Promise<void> {
    const notes = this.#boards.get(note.boardId) ?? []
    notes.push(note)
    if (notes.length > this.#maxNotesPerBoard) notes.splice(0, notes.length - this.#maxNotesPerBoard)

    // Deleting and setting again moves the board to the end of the Map's insertion order.
    this.#boards.delete(note.boardId)
    this.#boards.set(note.boardId, notes)
    if (this.#boards.size > this.#maxBoards) {
      const leastRecent = this.#boards.keys().next().value!
      this.#boards.delete(leastRecent)
    }
  }

  async list (boardId: string): Promise<Note[]> {
    return [...(this.#boards.get(boardId) ?? [])]
  }
}

export interface RedisNoteStoreOptions {
  redis: Redis
  /** Prepended to every key, such as `notes-board:`. */
  keyPrefix: string
  maxNotesPerBoard: number
  /** A board's key expires this many seconds after its last note was added. */
  boardTtlSeconds: number
  log: FastifyBaseLogger
}

/**
 * Keeps each board's notes in a Redis list of JSON strings under `{keyPrefix}notes:{boardId}`,
 * trimmed to the newest `maxNotesPerBoard`. Every instance that shares the Redis reads the same
 * notes.
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
  }

  /** The Redis key of a board's list. The board id comes last, so no id can produce another key. */
  keyFor (boardId: string): string {
    return `${this.#keyPrefix}notes:${boardId}`
  }

  /**
   * Appends the note, trims the list and renews its expiry in one MULTI transaction, so the list
   * never exceeds the cap, even with instances adding notes at the same time.
   */
  async add (note: Note): Promise<void> {
    const key = this.keyFor(note.boardId)
    const replies = await this.#redis.multi()
      .rpush(key, JSON.stringify(note))
      .ltrim(key, -this.#maxNotesPerBoard, -1)
      .expire(key, this.#boardTtlSeconds)
      .exec()

    if (replies === null) throw new Error(`Storing a note on board "${note.boardId}" failed: Redis discarded the transaction.`)
    for (const [err] of replies) {
      if (err !== null) throw err
    }
  }

  async list (boardId: string): Promise<Note[]> {
    const key = this.keyFor(boardId)
    const entries = await this.#redis.lrange(key, 0, -1)
    const notes: Note[] = []
    let invalid = 0
    for (const entry of entries) {
      const note = parseNote(entry)
      if (note === undefined) invalid++
      else notes.push(note)
    }
    if (invalid > 0) this.#log.warn({ key, invalid }, 'skipped stored notes that are not valid note JSON')
    return notes
  }
}

/** Parses one stored note. Returns undefined for anything that is not a complete note. */
function parseNote (entry: string): Note | undefined {
  let value: unknown
  try {
    value = JSON.parse(entry)
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined

  const fields = value as Record<string, unknown>
  const keys = ['id', 'boardId', 'text', 'createdAt', 'instanceId'] as const
  if (!keys.every((key) => typeof fields[key] === 'string')) return undefined
  return {
    id: fields.id as string,
    boardId: fields.boardId as string,
    text: fields.text as string,
    createdAt: fields.createdAt as string,
    instanceId: fields.instanceId as string
  }
}
