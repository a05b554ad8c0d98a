import { ClientDisconnectedError, ClientResultError, ClientResultTimeoutError } from '../errors.js'

interface PendingResult {
  method: string
  resolve: (result: unknown) => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
}

/**
 * The server's invocations of client methods that wait for a result: each has an id of its
 * own, distinct from the ids the client uses, and settles on the client's Completion, on a
 * timeout, or when the connection closes.
 */
export class PendingClientResults {
  readonly #connectionId: string
  readonly #pending = new Map<string, PendingResult>()
  #nextId = 0

  constructor (connectionId: string) {
    this.#connectionId = connectionId
  }

  /** Registers a new invocation and returns its id and the promise of its result. */
  create (method: string, timeout: number): { invocationId: string, result: Promise<unknown> } {
    const invocationId = `s${this.#nextId++}`
    const result = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(invocationId)
        reject(new ClientResultTimeoutError(this.#connectionId, method, timeout))
      }, timeout)
      this.#pending.set(invocationId, { method, resolve, reject, timer })
    })
    return { invocationId, result }
  }

  /** Settles the invocation that a Completion refers to. Returns false if none is waiting for it. */
  complete (invocationId: string, outcome: { result?: unknown, error?: string }): boolean {
    const pending = this.#pending.get(invocationId)
    if (pending === undefined) return false
    this.#pending.delete(invocationId)
    clearTimeout(pending.timer)
    if (outcome.error !== undefined) {
      // The client's own text travels along, so another instance can rebuild this error.
      pending.reject(Object.assign(new ClientResultError(this.#connectionId, pending.method, outcome.error), { clientError: outcome.error }))
    }
    else pending.resolve(outcome.result)
    return true
  }

  /** Cancels an invocation whose message could not be sent. */
  fail (invocationId: string, err: Error): void {
    const pending = this.#pending.get(invocationId)
    if (pending === undefined) return
    this.#pending.delete(invocationId)
    clearTimeout(pending.timer)
    pending.reject(err)
  }

  /** Rejects every waiting invocation because the connection closed. */
  disconnect (): void {
    for (const [invocationId, pending] of this.#pending) {
      clearTimeout(pending.timer)
      pending.reject(new ClientDisconnectedError(this.#connectionId, pending.method))
      this.#pending.delete(invocationId)
    }
  }
}
