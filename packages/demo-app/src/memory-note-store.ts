import { randomUUID } from 'node:crypto'
import { BoardFullError, NoteNotFoundError } from './notes.js'
import type { BoardSnapshot, Note, NoteAdded, NoteDeleted, NoteEdit, NoteEdited, NoteMoved, NoteStore } from './notes.js'

export interface MemoryNoteStoreOptions {
  maxNotesPerBoard: number
  /** Past this many boards, the board written to least recently is dropped. */
  maxBoards: number
}

interface MemoryBoard {
  epoch: string
  revision: number
  /** Top of the board first. */
  notes: Note[]
}

/**
 * Keeps notes in this process, for a single instance without Redis. Notes are lost on
 * restart, and other instances cannot see them.
 */
export class MemoryNoteStore implements NoteStore {
  readonly #maxNotesPerBoard: number
  readonly #maxBoards: number
  /** Boards in order of their last write, least recent first. */
  readonly #boards = new Map<string, MemoryBoard>()

  constructor ({ maxNotesPerBoard, maxBoards }: MemoryNoteStoreOptions) {
    this.#maxNotesPerBoard = maxNotesPerBoard
    this.#maxBoards = maxBoards
  }

  async read (boardId: string): Promise<BoardSnapshot> {
    const board = this.#boards.get(boardId)
    if (board === undefined) return { boardId, epoch: null, revision: 0, notes: [] }
    return { boardId, epoch: board.epoch, revision: board.revision, notes: board.notes.map(copyNote) }
  }

  async add (note: Note): Promise<NoteAdded> {
    const board = this.#boards.get(note.boardId) ?? { epoch: randomUUID(), revision: 0, notes: [] }
    if (board.notes.length >= this.#maxNotesPerBoard) throw new BoardFullError(note.boardId, this.#maxNotesPerBoard)

    board.notes.unshift(copyNote(note))
    board.revision++
    this.#touch(note.boardId, board)
    return { boardId: note.boardId, epoch: board.epoch, revision: board.revision, index: 0, note: copyNote(note) }
  }

  async edit (boardId: string, noteId: string, edit: NoteEdit): Promise<NoteEdited> {
    const board = this.#boards.get(boardId)
    const note = board?.notes.find((candidate) => candidate.id === noteId)
    if (board === undefined || note === undefined) throw new NoteNotFoundError(boardId, noteId)

    note.text = edit.text
    note.editedAt = edit.editedAt
    note.editedInstanceId = edit.editedInstanceId
    board.revision++
    this.#touch(boardId, board)
    return { boardId, epoch: board.epoch, revision: board.revision, note: copyNote(note) }
  }

  async move (boardId: string, noteId: string, beforeNoteId: string | null): Promise<NoteMoved> {
    const board = this.#boards.get(boardId)
    const from = board?.notes.findIndex((candidate) => candidate.id === noteId) ?? -1
    if (board === undefined || from === -1) throw new NoteNotFoundError(boardId, noteId)
    if (beforeNoteId !== null && !board.notes.some((candidate) => candidate.id === beforeNoteId)) {
      throw new NoteNotFoundError(boardId, beforeNoteId)
    }

    const [note] = board.notes.splice(from, 1)
    const index = beforeNoteId === null
      ? board.notes.length
      : board.notes.findIndex((candidate) => candidate.id === beforeNoteId)
    board.notes.splice(index, 0, note!)
    board.revision++
    this.#touch(boardId, board)
    return { boardId, epoch: board.epoch, revision: board.revision, noteId, index }
  }

  async delete (boardId: string, noteId: string): Promise<NoteDeleted> {
    const board = this.#boards.get(boardId)
    const index = board?.notes.findIndex((candidate) => candidate.id === noteId) ?? -1
    if (board === undefined || index === -1) throw new NoteNotFoundError(boardId, noteId)

    board.notes.splice(index, 1)
    board.revision++
    this.#touch(boardId, board)
    return { boardId, epoch: board.epoch, revision: board.revision, noteId }
  }

  /** Marks the board as written most recently, and drops the least recent past `maxBoards`. */
  #touch (boardId: string, board: MemoryBoard): void {
    // Deleting and setting again moves the board to the end of the Map's insertion order.
    this.#boards.delete(boardId)
    this.#boards.set(boardId, board)
    if (this.#boards.size > this.#maxBoards) {
      const leastRecent = this.#boards.keys().next().value!
      this.#boards.delete(leastRecent)
    }
  }
}

function copyNote (note: Note): Note {
  return { ...note }
}
