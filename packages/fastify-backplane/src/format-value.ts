/**
 * Shows a bad option value in an error message: numbers and booleans as written, strings in
 * quotes (so that "5" reads as text), and other values by their kind.
 */
export function formatOptionValue (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value)
  if (value === null || value === undefined || typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value)
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}
