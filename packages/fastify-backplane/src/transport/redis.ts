import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { PublishBatch } from './publish-batch.js'
import { RedisPubSubTransport } from './redis-pubsub.js'
import type { RedisPubSubOptions } from './redis-pubsub.js'

/** Channels per SUBSCRIBE command when the subscriptions are restored after a reconnect. */
const RESUBSCRIBE_BATCH = 500

export interface RedisTransportOptions extends RedisPubSubOptions<Redis> {
  /** The app's logger, for the subscriber's losses and recoveries. */
  log: FastifyBaseLogger
}

/**
 * Classic Redis pub/sub: PUBLISH on one connection, SUBSCRIBE on another. ioredis sends
 * commands in call order, which keeps this transport's ordering contract. Nothing is buffered
 * across an outage: publishing fails while the publisher is not connected, and Redis pub/sub
 * is at-most-once. After every reconnect of the subscriber, the transport subscribes again to
 * every channel it should hold, whatever happened to the commands issued during the outage.
 */
export class RedisTransport extends RedisPubSubTransport<Redis> {
  readonly kind = 'redis'
  protected readonly messageEvent = 'messageBuffer'
  readonly #publishes: PublishBatch
  readonly #log: FastifyBaseLogger

  constructor (options: RedisTransportOptions) {
    super(options)
    this.#publishes = new PublishBatch(options.publisher)
    this.#log = options.log
    this.#watchSubscriber()
  }

  protected sendPublish (channel: string, payload: Buffer): Promise<void> {
    return this.#publishes.publish(channel, payload)
  }

  protected sendSubscribe (channel: string): Promise<unknown> {
    return this.subscriber.subscribe(channel)
  }

  protected sendUnsubscribe (channel: string): Promise<unknown> {
    return this.subscriber.unsubscribe(channel)
  }

  async subscriberCount (channel: string): Promise<number> {
    const reply = await this.publisher.pubsub('NUMSUB', channel) as [string, number]
    return Number(reply[1])
  }

  /** Logs the subscriber's losses and recoveries, and restores its subscriptions on every reconnect. */
  #watchSubscriber (): void {
    let connectedBefore = false
    let lostAt: number | undefined
    this.subscriber.on('close', () => {
      if (this.closing !== undefined || lostAt !== undefined || !connectedBefore) return
      lostAt = Date.now()
      this.#log.warn({ role: 'subscriber', channels: this.channels.size }, 'backplane Redis subscriber connection closed; reconnecting')
    })
    this.subscriber.on('ready', () => {
      if (!connectedBefore) {
        connectedBefore = true
        return
      }
      const downMs = lostAt === undefined ? undefined : Date.now() - lostAt
      lostAt = undefined
      this.#resubscribe()
        .then(() => this.#log.info({ role: 'subscriber', channels: this.channels.size, downMs }, 'backplane Redis subscriber reconnected and resubscribed'))
        .catch((err: unknown) => this.#log.warn({ error: describeError(err), channels: this.channels.size }, 'backplane resubscribe failed; retrying on the next reconnect'))
    })
  }

  async #resubscribe (): Promise<void> {
    const channels = [...this.channels]
    for (let start = 0; start < channels.length; start += RESUBSCRIBE_BATCH) {
      await this.subscriber.subscribe(...channels.slice(start, start + RESUBSCRIBE_BATCH))
    }
  }
}

/** Error fields that are safe to log: ioredis attaches AUTH arguments to some errors. */
export function describeError (err: unknown): Record<string, unknown> {
  const { name, message, code } = err as Error & { code?: string }
  return { type: name, code, message }
}
