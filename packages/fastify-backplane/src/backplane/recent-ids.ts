/**
 * Remembers recent message ids per origin instance. A message for several groups, users or
 * connections is published on each of their channels, so an instance subscribed to more than
 * one of them receives copies. The first copy reaches every local recipient, and this class
 * drops the rest.
 */
export class RecentIds {
  readonly #perOrigin = new Map<string, Set<number>>()
  readonly #capacity: number
  readonly #maximumOrigins: number

  constructor (capacity = 4096, maximumOrigins = 256) {
    this.#capacity = capacity
    this.#maximumOrigins = maximumOrigins
  }

  /** Records `id` and returns true, or returns false if it was already recorded. */
  add (origin: string, id: number): boolean {
    let ids = this.#perOrigin.get(origin)
    if (ids === undefined) {
      if (this.#perOrigin.size >= this.#maximumOrigins) {
        this.#perOrigin.delete(this.#perOrigin.keys().next().value!)
      }
      ids = new Set()
      this.#perOrigin.set(origin, ids)
    }
    if (ids.has(id)) return false

    ids.add(id)
    // A Set iterates in insertion order, so the first entry is the oldest.
    if (ids.size > this.#capacity) ids.delete(ids.values().next().value!)
    return true
  }
}
