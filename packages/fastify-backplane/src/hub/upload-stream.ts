/**
 * An async iterable fed by a client's StreamItem messages and ended by its Completion: what a
 * hub method receives for each id in an Invocation's `streamIds`. The buffer contains at most
 * `capacity` items. When it is full, the connection stops reading from its socket until the
 * method consumes an item, so a fast client cannot grow server memory.
 */
export class UploadStream implements AsyncIterable<unknown> {
  readonly #items: unknown[] = []
  readonly #capacity: number
  readonly #pause: () => void
  readonly #resume: () => void
  #waiting: { resolve: (result: IteratorResult<unknown>) => void, reject: (err: Error) => void } | undefined
  #ended = false
  #error: Error | undefined
  #abandoned = false
  #paused = false

  constructor (capacity: number, pause: () => void, resume: () => void) {
    this.#capacity = capacity
    this.#pause = pause
    this.#resume = resume
  }

  /** Adds an item from the client. */
  push (item: unknown): void {
    if (this.#ended || this.#abandoned) return
    if (this.#waiting !== undefined) {
      const waiting = this.#waiting
      this.#waiting = undefined
      waiting.resolve({ value: item, done: false })
      return
    }
    this.#items.push(item)
    if (this.#items.length >= this.#capacity && !this.#paused) {
      this.#paused = true
      this.#pause()
    }
  }

  /** Ends the stream after the buffered items, with an error if the client sent one. */
  end (error?: Error): void {
    if (this.#ended) return
    this.#ended = true
    this.#error = error
    this.#resumeReading()
    if (this.#waiting !== undefined && this.#items.length === 0) {
      const waiting = this.#waiting
      this.#waiting = undefined
      if (error === undefined) waiting.resolve({ value: undefined, done: true })
      else waiting.reject(error)
    }
  }

  [Symbol.asyncIterator] (): AsyncIterator<unknown> {
    return {
      next: () => this.#next(),
      return: async () => {
        this.#abandoned = true
        this.#items.length = 0
        this.#resumeReading()
        return { value: undefined, done: true }
      }
    }
  }

  #next (): Promise<IteratorResult<unknown>> {
    if (this.#items.length > 0) {
      const value = this.#items.shift()
      if (this.#items.length < this.#capacity) this.#resumeReading()
      return Promise.resolve({ value, done: false })
    }
    if (this.#ended || this.#abandoned) {
      return this.#error === undefined ? Promise.resolve({ value: undefined, done: true }) : Promise.reject(this.#error)
    }
    return new Promise((resolve, reject) => { this.#waiting = { resolve, reject } })
  }

  #resumeReading (): void {
    if (!this.#paused) return
    this.#paused = false
    this.#resume()
  }
}
