import type { FastifyBaseLogger } from 'fastify'

/**
 * Logs a warning at most once per interval for each key, and reports how many repeats it
 * held back, so that a Redis outage or a flood of bad messages cannot flood the log.
 */
export class ThrottledWarnings {
  readonly #log: FastifyBaseLogger
  readonly #intervalMs: number
  readonly #last = new Map<string, { at: number, suppressed: number }>()

  constructor (log: FastifyBaseLogger, intervalMs = 10_000) {
    this.#log = log
    this.#intervalMs = intervalMs
  }

  warn (key: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now()
    const entry = this.#last.get(key)
    if (entry !== undefined && now - entry.at < this.#intervalMs) {
      entry.suppressed++
      return
    }
    const suppressed = entry?.suppressed ?? 0
    this.#last.set(key, { at: now, suppressed: 0 })
    this.#log.warn(suppressed > 0 ? { ...fields, suppressed } : fields, message)
  }
}
