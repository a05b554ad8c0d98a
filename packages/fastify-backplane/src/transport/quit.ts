/** The part of an ioredis Redis or Cluster client that closing needs. */
export interface Quittable {
  readonly status: string
  quit (): Promise<unknown>
  disconnect (): void
}

/** Sends QUIT, and drops the connection if Redis is unreachable or has not replied within `timeout` ms. */
export async function quitWithin (client: Quittable, timeout: number): Promise<void> {
  if (client.status === 'end') return
  if (client.status !== 'ready') {
    // QUIT would wait in the offline queue for a server that may never return.
    client.disconnect()
    return
  }

  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeout)
  })
  try {
    await Promise.race([client.quit().catch(() => {}), timedOut])
  } finally {
    clearTimeout(timer)
    client.disconnect()
  }
}
