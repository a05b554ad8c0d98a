/** A promise with its resolve function, for hooks and methods that a test releases or awaits. */
export function deferred<T = void> (): { promise: Promise<T>, resolve: (value: T) => void } {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((resolve_) => { resolve = resolve_ })
  return { promise, resolve }
}

/** Rejects when `promise` has not settled within `timeout` ms, naming what did not happen. */
export async function within<T> (promise: Promise<T>, timeout: number, description: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${description} did not happen within ${timeout} ms`)), timeout)
  })
  try {
    return await Promise.race([promise, expired])
  } finally {
    clearTimeout(timer)
  }
}
