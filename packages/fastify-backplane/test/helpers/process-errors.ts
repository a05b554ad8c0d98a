import type { TestContext } from 'node:test'

/**
 * Collects every unhandled rejection, and with `uncaught` every uncaught exception, that the
 * process reports until the test ends, so a test can assert that none happened.
 */
export function collectProcessErrors (t: TestContext, { uncaught = false } = {}): unknown[] {
  const errors: unknown[] = []
  const record = (reason: unknown): void => { errors.push(reason) }
  process.on('unhandledRejection', record)
  if (uncaught) process.on('uncaughtException', record)
  t.after(() => {
    process.off('unhandledRejection', record)
    process.off('uncaughtException', record)
  })
  return errors
}
