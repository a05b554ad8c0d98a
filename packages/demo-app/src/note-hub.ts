import { randomUUID } from 'node:crypto'
import { HubException } from 'fastify-backplane'
import type { HubConnectionContext, HubMethod } from 'fastify-backplane'
import type { Note, NoteStore } from './notes.js'

/** Letters, digits, `-` and `_`, so a board id is safe in URLs, Redis keys and group names. */
export const BOARD_ID_PATTERN = /^[A-Za-z0-9_-]+$/
export const MAX_BOARD_ID_LENGTH = 64
/** In UTF-16 code units, as the `maxlength` attribute of the page's text area counts them. */
export const MAX_NOTE_LENGTH = 500

/** The key under which a connection's `items` map stores the board it has joined. */
const JOINED_BOARD = Symbol('joinedBoard')

export interface NoteHubOptions {
  store: NoteStore
  /** Stored on every note added through this instance, and returned by `GetInstanceId`. */
  instanceId: string
}

/**
 * Creates the methods that clients invoke on `/noteHub`. Each note added is sent as
 * `NoteAdded(note)` to every connection that has joined its board, on every instance, the
 * caller included.
 */
export function createNoteHubMethods ({ store, instanceId }: NoteHubOptions): Record<string, HubMethod> {
  return {
    /**
     * Joins the board's group and returns its notes, oldest first. A connection is on one board
     * at a time, so joining another board leaves the previous one.
     */
    async JoinBoard (context: HubConnectionContext, boardId: unknown): Promise<Note[]> {
      const board = validateBoardId(boardId)
      const previous = context.items.get(JOINED_BOARD) as string | undefined
      if (previous !== undefined && previous !== board) {
        await context.groups.remove(groupForBoard(previous))
      }

      // Joining before reading means a note added in between arrives as NoteAdded even when
      // the list misses it. Clients ignore a note whose id they already show.
      await context.groups.add(groupForBoard(board))
      context.items.set(JOINED_BOARD, board)
      return await store.list(board)
    },

    /** Stores a note, sends it to the board's members and returns it. */
    async AddNote (context: HubConnectionContext, boardId: unknown, text: unknown): Promise<Note> {
      const board = validateBoardId(boardId)
      const note: Note = {
        id: randomUUID(),
        boardId: board,
        text: validateNoteText(text),
        createdAt: new Date().toISOString(),
        instanceId
      }
      await store.add(note)
      context.log.info({ boardId: board, noteId: note.id }, 'note added')

      // The backplane delivers to this instance's members before it publishes, so a failed
      // publish only keeps the note from other instances until their clients rejoin the board.
      try {
        await context.broadcast('NoteAdded', [note], { group: groupForBoard(board) })
      } catch (err) {
        context.log.warn({ err, boardId: board, noteId: note.id }, 'note stored, but sending it to other instances failed')
      }
      return note
    },

    /** Returns the id of the instance that serves this connection. */
    GetInstanceId (): string {
      return instanceId
    }
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
    throw new HubException('Note text is empty. Type some text before adding the note.')
  }
  if (text.length > MAX_NOTE_LENGTH) {
    throw new HubException(`Note text is too long: ${text.length} characters, the maximum is ${MAX_NOTE_LENGTH}.`)
  }
  return text
}

function groupForBoard (boardId: string): string {
  return `board:${boardId}`
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
