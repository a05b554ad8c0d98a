// Two ways to show an invalid value in an error message. Values from the app (options, broadcast
// arguments) are shown as written, which points at the mistake. Values from clients are shown
// by kind only, so that these messages do not copy what a client sent, such as a token, into logs.

/**
 * Shows a value from the app: numbers, booleans, null and undefined as written, strings in
 * quotes (so that "5" reads as text) and cut at 64 characters, other values by their kind.
 */
export function describeValue (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value)
  if (value === null || value === undefined || typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value)
  return describeKind(value)
}

/** Shows a value from a client by its kind only: "a string", "an array", "binary data", "null". */
export function describeKind (value: unknown): string {
  if (value === null || value === undefined) return String(value)
  if (Array.isArray(value)) return 'an array'
  if (value instanceof Uint8Array) return 'binary data'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}
