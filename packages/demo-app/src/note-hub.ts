import { randomUUID } from 'node:crypto'
import { HubException } from 'fastify-backplane'
import type { HubConnectionContext, HubMethod } from 'fastify-backplane'
import { BoardFullError, NoteNotFoundError } from './notes.js'
import type { BoardChange, BoardSnapshot, NoteAdded, NoteDeleted, NoteEdited, NoteMoved, NoteStore } from './notes.js'
import type { PresenceNotifier } from './presence.js'

/** Letters, digits, `-` and `_`, so a board id is safe in URLs, Redis keys and group names. */
export const BOARD_ID_PATTERN = /^[A-Za-z0-9_-]+$/
export const MAX_BOARD_ID_LENGTH = 64
/** In UTF-16 code units, as the `maxlength` attribute of the page's text areas counts them. */
export const MAX_NOTE_LENGTH = 500
/** Note ids are UUIDs that `AddNote` generates. */
const NOTE_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** The client methods that carry changes, with the log message of each. */
const CHANGE_LOG_MESSAGES = {
  NoteAdded: 'note added',
  NoteEdited: 'note edited',
  NoteMoved: 'note moved',
  NoteDeleted: 'note deleted'
} as const
type ChangeMethod = keyof typeof CHANGE_LOG_MESSAGES

/** The key under which a connection's `items` map stores the board it has joined. */
const JOINED_BOARD = Symbol('joinedBoard')

export interface NoteHubOptions {
  store: NoteStore
  /** Stored on every note added or edited through this instance, and returned by `GetConnectionInfo`. */
  instanceId: string
  presence: PresenceNotifier
}

/** The parts of the hub's options that the notes board defines. */
export interface NoteHub {
  methods: Record<string, HubMethod>
  onDisconnected: (context: HubConnectionContext) => void
}

/** The result of `GetConnectionInfo`. */
export interface ConnectionInfo {
  instanceId: string
  connectionId: string
}

/**
 * Creates the methods that clients invoke on `/noteHub`. Every change is stored first, then
 * sent to every connection that has joined the board, on every instance, the caller included:
 * `NoteAdded`, `NoteEdited`, `NoteMoved` or `NoteDeleted`, each with the board's new revision.
 * The method returns the same change to the caller.
 */
export function createNoteHub ({ store, instanceId, presence }: NoteHubOptions): NoteHub {
  /**
   * Logs a stored change and sends it to the board's members. The backplane delivers to this
   * instance's members before it publishes, so a failed publish only delays the change for
   * members on other instances. They reload the board when the next change they receive
   * reveals the missing revision, or when they reconnect.
   */
  async function sendChange (context: HubConnectionContext, method: ChangeMethod, change: BoardChange, noteId: string): Promise<void> {
    const fields = { boardId: change.boardId, noteId, revision: change.revision }
    context.log.info(fields, CHANGE_LOG_MESSAGES[method])
    try {
      await context.broadcast(method, [change], { group: groupForBoard(change.boardId) })
    } catch (err) {
      context.log.warn({ err, ...fields }, 'change stored, but sending it to other instances failed')
    }
  }

  const methods: Record<string, HubMethod> = {
    /**
     * Joins the board's group and returns its notes, top first. A connection is on one board
     * at a time, so joining another board leaves the previous one. Calling it again for the
     * same board reloads the board.
     */
    async JoinBoard (context: HubConnectionContext, boardId: unknown): Promise<BoardSnapshot> {
      const board = validateBoardId(boardId)
      const previous = context.items.get(JOINED_BOARD) as string | undefined
      if (previous !== undefined && previous !== board) {
        await context.groups.remove(groupForBoard(previous))
        presence.schedule(previous, context.hubContext)
      }

      // Joining before reading means a change stored in between arrives as a message even
      // when the snapshot misses it. Clients skip changes whose revision the snapshot covers.
      await context.groups.add(groupForBoard(board))
      context.items.set(JOINED_BOARD, board)
      if (previous !== board) presence.schedule(board, context.hubContext)
      return await store.read(board)
    },

    /** Adds a note at the top of the board. */
    async AddNote (context: HubConnectionContext, boardId: unknown, text: unknown): Promise<NoteAdded> {
      const board = validateBoardId(boardId)
      const note = {
        id: randomUUID(),
        boardId: board,
        text: validateNoteText(text),
        createdAt: new Date().toISOString(),
        instanceId
      }
      const change = await raiseForUsers(store.add(note))
      await sendChange(context, 'NoteAdded', change, note.id)
      return change
    },

    /** Replaces a note's text. */
    async EditNote (context: HubConnectionContext, boardId: unknown, noteId: unknown, text: unknown): Promise<NoteEdited> {
      const board = validateBoardId(boardId)
      const id = validateNoteId(noteId, 'Note id')
      const edit = { text: validateNoteText(text), editedAt: new Date().toISOString(), editedInstanceId: instanceId }
      const change = await raiseForUsers(store.edit(board, id, edit))
      await sendChange(context, 'NoteEdited', change, id)
      return change
    },

    /** Moves a note directly above `beforeNoteId`, or to the bottom when it is null. */
    async MoveNote (context: HubConnectionContext, boardId: unknown, noteId: unknown, beforeNoteId: unknown): Promise<NoteMoved> {
      const board = validateBoardId(boardId)
      const id = validateNoteId(noteId, 'Note id')
      if (beforeNoteId !== null && typeof beforeNoteId !== 'string') {
        throw new HubException(`The note to move above must be a note id, or null for the bottom of the board, got ${describeType(beforeNoteId)}.`)
      }
      const before = beforeNoteId === null ? null : validateNoteId(beforeNoteId, 'The note to move above')
      if (before === id) {
        throw new HubException('A note cannot move above itself. Pass the id of another note, or null to move it to the bottom.')
      }
      const change = await raiseForUsers(store.move(board, id, before))
      await sendChange(context, 'NoteMoved', change, id)
      return change
    },

    async DeleteNote (context: HubConnectionContext, boardId: unknown, noteId: unknown): Promise<NoteDeleted> {
      const board = validateBoardId(boardId)
      const id = validateNoteId(noteId, 'Note id')
      const change = await raiseForUsers(store.delete(board, id))
      await sendChange(context, 'NoteDeleted', change, id)
      return change
    },

    /**
     * Returns the instance that serves this connection and the connection's id. Clients that
     * skip negotiation learn their connection id only this way.
     */
    GetConnectionInfo (context: HubConnectionContext): ConnectionInfo {
      return { instanceId, connectionId: context.connectionId }
    }
  }

  return {
    methods,
    onDisconnected (context) {
      const board = context.items.get(JOINED_BOARD) as string | undefined
      if (board !== undefined) presence.schedule(board, context.hubContext)
    }
  }
}

/** Returns the hub group whose members receive a board's changes. */
export function groupForBoard (boardId: string): string {
  return `board:${boardId}`
}

/** Turns the store's errors about missing notes and full boards into messages for the caller. */
async function raiseForUsers<T> (result: Promise<T>): Promise<T> {
  try {
    return await result
  } catch (err) {
    if (err instanceof NoteNotFoundError || err instanceof BoardFullError) throw new HubException(err.message)
    throw err
  }
}

/** Returns the board id, or throws a HubException whose message names the problem. */
export function validateBoardId (value: unknown): string {
  if (typeof value !== 'string') {
    throw new HubException(`Board id must be a string, got ${describeType(value)}.`)
  }
  if (value.length === 0 || value.length > MAX_BOARD_ID_LENGTH || !BOARD_ID_PATTERN.test(value)) {
    throw new HubException(`Board id ${quote(value)} is invalid. Use 1 to ${MAX_BOARD_ID_LENGTH} letters, digits, "-" or "_".`)
  }
  return value
}

/** Returns the note id, or throws a HubException that starts with `name`. */
export function validateNoteId (value: unknown, name: string): string {
  if (typeof value !== 'string') {
    throw new HubException(`${name} must be a string, got ${describeType(value)}.`)
  }
  if (!NOTE_ID_PATTERN.test(value)) {
    throw new HubException(`${name} ${quote(value)} is invalid. Use the id of a note on the board, a lowercase UUID.`)
  }
  return value
}

/**
 * Returns the text without leading and trailing whitespace, or throws a HubException when it
 * is not a string, is empty, or is longer than MAX_NOTE_LENGTH after trimming.
 */
export function validateNoteText (value: unknown): string {
  if (typeof value !== 'string') {
    throw new HubException(`Note text must be a string, got ${describeType(value)}.`)
  }
  const text = value.trim()
  if (text === '') {
    throw new HubException('Note text is empty. Type some text first.')
  }
  if (text.length > MAX_NOTE_LENGTH) {
    throw new HubException(`Note text is too long: ${text.length} characters, the maximum is ${MAX_NOTE_LENGTH}.`)
  }
  return text
}

function describeType (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value
}

/** Quotes a client-supplied value for an error message, shortened so the message stays small. */
function quote (value: string): string {
  return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)
}
