import { InvalidOptionError } from './errors.js'

/** Options that Fastify's `register()` reads itself and passes on to the plugin with the rest. */
const REGISTER_OPTIONS = new Set(['prefix', 'logLevel', 'logSerializers'])

/**
 * Throws for an option that `known` does not contain, naming the closest known option, so that a
 * misspelled option fails `ready()` instead of leaving the intended option at its default.
 */
export function rejectUnknownOptions (options: object, known: Readonly<Record<string, true>>): void {
  for (const name of Object.keys(options)) {
    if (Object.hasOwn(known, name) || REGISTER_OPTIONS.has(name)) continue
    const closest = closestName(name, Object.keys(known))
    throw new InvalidOptionError(name, 'is not an option of this plugin', closest === undefined ? 'Remove it.' : `Did you mean "${closest}"?`)
  }
}

/** Returns the name in `names` within a third of `name`'s length in edits, ignoring case, if any. */
function closestName (name: string, names: string[]): string | undefined {
  const lowerCaseName = name.toLowerCase()
  let closest: string | undefined
  let closestDistance = Math.max(1, Math.floor(name.length / 3)) + 1
  for (const candidate of names) {
    const distance = editDistance(lowerCaseName, candidate.toLowerCase())
    if (distance < closestDistance) {
      closest = candidate
      closestDistance = distance
    }
  }
  return closest
}

/** Counts the insertions, deletions and substitutions that turn `a` into `b` (Levenshtein). */
function editDistance (a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution))
    }
    previous = current
  }
  return previous[b.length]!
}
