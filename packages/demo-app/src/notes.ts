/** A note on a board, as stored and as sent to clients. */
export interface Note {
  /** A random UUID. */
  id: string
  boardId: string
  text: string
  /** When the note was added, as an ISO 8601 timestamp in UTC. */
  createdAt: string
  /** The instance that added the note, such as Heroku's `web.1`. */
  instanceId: string
  /** When the text was last edited, as an ISO 8601 timestamp in UTC; absent until the first edit. */
  editedAt?: string
  /** The instance that stored the last edit; absent until the first edit. */
  editedInstanceId?: string
}

/**
 * A board's notes at one revision, top of the board first. `JoinBoard` returns it, and clients
 * then apply the changes whose revision follows `revision`.
 */
export interface BoardSnapshot {
  boardId: string
  /**
   * A random id of this incarnation of the board, or null while the board does not exist. A
   * board that expired or was evicted and is then written again gets a new epoch, so its
   * revisions start again at 1 and clients must reload it.
   */
  epoch: string | null
  /** How many changes the board has had in this epoch. Each change adds exactly one. */
  revision: number
  notes: Note[]
}

/** The fields that every change carries, so clients can apply changes in revision order. */
export interface BoardChange {
  boardId: string
  epoch: string
  /** This change's revision: the previous revision of the board plus one. */
  revision: number
}

/** A note was added at `index` (0 is the top of the board). */
export interface NoteAdded extends BoardChange {
  note: Note
  index: number
}

/** A note's text was edited. */
export interface NoteEdited extends BoardChange {
  note: Note
}

/** A note now sits at `index`, counted after the move (0 is the top of the board). */
export interface NoteMoved extends BoardChange {
  noteId: string
  index: number
}

export interface NoteDeleted extends BoardChange {
  noteId: string
}

/** The fields of an edit that the hub supplies. */
export interface NoteEdit {
  text: string
  editedAt: string
  editedInstanceId: string
}

/**
 * Storage for the notes of every board. Every change of a board gets the next revision of that
 * board atomically, even when several instances change it at the same time.
 */
export interface NoteStore {
  /** Returns the board's notes, top first; an unknown board has epoch null and revision 0. */
  read (boardId: string): Promise<BoardSnapshot>
  /** Adds the note at the top of its board. Throws BoardFullError at the per-board maximum. */
  add (note: Note): Promise<NoteAdded>
  /** Replaces the note's text. Throws NoteNotFoundError when the board has no such note. */
  edit (boardId: string, noteId: string, edit: NoteEdit): Promise<NoteEdited>
  /**
   * Moves the note directly above `beforeNoteId`, or to the bottom when it is null. Throws
   * NoteNotFoundError when either note is not on the board.
   */
  move (boardId: string, noteId: string, beforeNoteId: string | null): Promise<NoteMoved>
  /** Deletes the note. Throws NoteNotFoundError when the board has no such note. */
  delete (boardId: string, noteId: string): Promise<NoteDeleted>
}

/** Thrown when a change names a note that its board does not have. The message is for users. */
export class NoteNotFoundError extends Error {
  readonly boardId: string
  readonly noteId: string

  constructor (boardId: string, noteId: string) {
    super(`Note ${noteId} is not on board "${boardId}". Someone may have deleted it.`)
    this.name = 'NoteNotFoundError'
    this.boardId = boardId
    this.noteId = noteId
  }
}

/** Thrown when a note is added to a board that already has the maximum number of notes. */
export class BoardFullError extends Error {
  readonly boardId: string
  readonly maxNotes: number

  constructor (boardId: string, maxNotes: number) {
    super(`Board "${boardId}" is full: it has ${maxNotes} notes, the maximum. Delete a note before adding another.`)
    this.name = 'BoardFullError'
    this.boardId = boardId
    this.maxNotes = maxNotes
  }
}

/** Parses one stored note. Returns undefined for anything that is not a complete note. */
export function parseNote (entry: string): Note | undefined {
  let value: unknown
  try {
    value = JSON.parse(entry)
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined

  const fields = value as Record<string, unknown>
  const required = ['id', 'boardId', 'text', 'createdAt', 'instanceId'] as const
  if (!required.every((key) => typeof fields[key] === 'string')) return undefined
  const note: Note = {
    id: fields.id as string,
    boardId: fields.boardId as string,
    text: fields.text as string,
    createdAt: fields.createdAt as string,
    instanceId: fields.instanceId as string
  }
  if (typeof fields.editedAt === 'string' && typeof fields.editedInstanceId === 'string') {
    note.editedAt = fields.editedAt
    note.editedInstanceId = fields.editedInstanceId
  }
  return note
}
