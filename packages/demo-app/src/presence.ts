import type { FastifyBaseLogger } from 'fastify'
import type { HubContext } from 'fastify-backplane'

/** The payload of `PresenceChanged`, the message that a board's members receive. */
export interface BoardPresence {
  boardId: string
  /** Connections that have joined the board, on every instance that replied. */
  connections: number
  /** Instances that replied, this one included. */
  instances: number
  /** False when an instance did not reply in time, so `connections` may be too low. */
  complete: boolean
}

export interface PresenceNotifierOptions {
  /** The hub group of a board. */
  groupForBoard: (boardId: string) => string
  log: FastifyBaseLogger
  /**
   * How long to wait after a join or leave before counting, in milliseconds. Joins and leaves
   * within this window cost one count, and a count taken after the window includes changes
   * that other instances made during it.
   * @default 250
   */
  delayMs?: number
}

/**
 * Counts a board's members across instances after people join or leave, and sends the result
 * to the board's members as `PresenceChanged`. Each instance counts for the joins and leaves
 * it serves, so when two instances count at nearly the same time, both counts include both
 * changes.
 */
export class PresenceNotifier {
  readonly #groupForBoard: (boardId: string) => string
  readonly #log: FastifyBaseLogger
  readonly #delayMs: number
  readonly #timers = new Map<string, NodeJS.Timeout>()
  #closed = false

  constructor ({ groupForBoard, log, delayMs = 250 }: PresenceNotifierOptions) {
    this.#groupForBoard = groupForBoard
    this.#log = log
    this.#delayMs = delayMs
  }

  /** Schedules a count of the board's members, unless one is already scheduled. */
  schedule (boardId: string, hubContext: HubContext): void {
    if (this.#closed || this.#timers.has(boardId)) return
    const timer = setTimeout(() => {
      this.#timers.delete(boardId)
      void this.#countAndSend(boardId, hubContext)
    }, this.#delayMs)
    // A pending count must not keep a closing process alive.
    timer.unref()
    this.#timers.set(boardId, timer)
  }

  /** Cancels the scheduled counts and ignores later joins and leaves. */
  close (): void {
    this.#closed = true
    for (const timer of this.#timers.values()) clearTimeout(timer)
    this.#timers.clear()
  }

  async #countAndSend (boardId: string, hubContext: HubContext): Promise<void> {
    const group = this.#groupForBoard(boardId)
    try {
      const presence = await hubContext.count({ group })
      if (this.#closed) return
      const message: BoardPresence = { boardId, connections: presence.connections, instances: presence.instances, complete: presence.complete }
      await hubContext.clients.group(group).send('PresenceChanged', message)
    } catch (err) {
      if (this.#closed) return
      this.#log.warn({ err, boardId }, 'counting or sending the board presence failed')
    }
  }
}
