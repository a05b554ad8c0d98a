import type { Redis } from 'ioredis'

interface PendingPublish {
  channel: string
  payload: Buffer
  resolve: () => void
  reject: (err: Error) => void
}

/**
 * Sends the PUBLISH commands issued in one tick as one pipeline, in one write to Redis, in the
 * order they were issued. The batch leaves from `process.nextTick()`, before the event loop
 * moves on, so a broadcast reaches Redis before its sending instance spends time writing the
 * same broadcast to its own sockets. ioredis's `enableAutoPipelining` waits for `setImmediate()`
 * instead, which runs after those writes when they were scheduled first.
 */
export class PublishBatch {
  readonly #client: Redis
  #pending: PendingPublish[] = []

  constructor (client: Redis) {
    this.#client = client
  }

  publish (channel: string, payload: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ channel, payload, resolve, reject })
      if (this.#pending.length === 1) process.nextTick(() => this.#send())
    })
  }

  #send (): void {
    const batch = this.#pending
    this.#pending = []
    if (batch.length === 1) {
      const [{ channel, payload, resolve, reject }] = batch as [PendingPublish]
      this.#client.publish(channel, payload).then(() => resolve(), reject)
      return
    }

    const pipeline = this.#client.pipeline()
    for (const { channel, payload } of batch) pipeline.publish(channel, payload)
    pipeline.exec().then((replies) => {
      for (const [index, { resolve, reject }] of batch.entries()) {
        const reply = replies?.[index]
        if (reply === undefined) reject(new Error('Redis sent no reply to this PUBLISH'))
        else if (reply[0] !== null) reject(reply[0])
        else resolve()
      }
    }, (err: Error) => {
      for (const { reject } of batch) reject(err)
    })
  }
}
