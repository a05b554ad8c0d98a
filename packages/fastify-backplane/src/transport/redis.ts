import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { PublishFailedError, SubscribeFailedError } from '../errors.js'
import { PublishBatch } from './publish-batch.js'
import { quitWithin } from './quit.js'
import type { Transport, TransportMessageHandler } from './transport.js'

/** Channels per SUBSCRIBE command when the subscriptions are restored after a reconnect. */
const RESUBSCRIBE_BATCH = 500

export interface RedisTransportOptions {
  /** Runs PUBLISH. May be shared with the app. */
  publisher: Redis
  /** A dedicated connection in subscriber mode, which can run no other commands. */
  subscriber: Redis
  /** The connections this transport opened and so must quit on close; never the app's. */
  owned: Redis[]
  /** How long `close()` waits for QUIT before it drops the connections, in milliseconds. */
  closeTimeout: number
  log: FastifyBaseLogger
}

/**
 * Classic Redis pub/sub: PUBLISH on one connection, SUBSCRIBE on another. ioredis sends
 * commands in call order, which keeps this transport's ordering contract. Nothing is buffered
 * across an outage: publishing fails while the publisher is not connected, and Redis pub/sub
 * is at-most-once. After every reconnect of the subscriber, the transport subscribes again to
 * every channel it should hold, whatever happened to the commands issued during the outage.
 */
export class RedisTransport implements Transport {
  readonly kind = 'redis'
  readonly #publisher: Redis
  readonly #publishes: PublishBatch
  readonly #subscriber: Redis
  readonly #owned: Redis[]
  readonly #closeTimeout: number
  readonly #log: FastifyBaseLogger
  /** The channels this instance should be subscribed to, whatever the connection's state. */
  readonly #channels = new Set<string>()
  #closing: Promise<void> | undefined

  constructor ({ publisher, subscriber, owned, closeTimeout, log }: RedisTransportOptions) {
    this.#publisher = publisher
    this.#publishes = new PublishBatch(publisher)
    this.#subscriber = subscriber
    this.#owned = owned
    this.#closeTimeout = closeTimeout
    this.#log = log
    this.#watchSubscriber()
  }

  get connected (): boolean {
    return this.#publisher.status === 'ready' && this.#subscriber.status === 'ready'
  }

  get subscribedChannels (): number {
    return this.#channels.size
  }

  listen (handler: TransportMessageHandler): void {
    this.#subscriber.on('messageBuffer', (channel: Buffer, payload: Buffer) => {
      handler(channel.toString('utf8'), payload)
    })
  }

  async publish (channel: string, payload: Buffer): Promise<void> {
    // Without this check ioredis would queue the command until Redis returns. Messages that late
    // are stale, and the queue would grow for as long as the outage lasts.
    if (this.#publisher.status !== 'ready') throw new PublishFailedError(channel, `the Redis connection is ${this.#publisher.status}`)
    try {
      await this.#publishes.publish(channel, payload)
    } catch (err) {
      throw new PublishFailedError(channel, (err as Error).message)
    }
  }

  async subscribe (channel: string): Promise<void> {
    this.#channels.add(channel)
    try {
      await this.#subscriber.subscribe(channel)
    } catch (err) {
      throw new SubscribeFailedError(channel, (err as Error).message)
    }
  }

  async unsubscribe (channel: string): Promise<void> {
    this.#channels.delete(channel)
    if (this.#subscriber.status === 'end') return
    await this.#subscriber.unsubscribe(channel)
  }

  async claim (key: string, ttl: number): Promise<boolean> {
    return await this.#publisher.set(key, '1', 'PX', Math.max(1, Math.ceil(ttl)), 'NX') === 'OK'
  }

  async subscriberCount (channel: string): Promise<number> {
    const reply = await this.#publisher.pubsub('NUMSUB', channel) as [string, number]
    return Number(reply[1])
  }

  /**
   * Drops and reopens the connections this transport owns, for a health check that found them
   * unresponsive although their sockets look open. A connection still reconnecting is left alone.
   */
  reconnect (): void {
    for (const client of this.#owned) {
      if (client.status === 'ready') client.disconnect(true)
    }
  }

  close (): Promise<void> {
    this.#closing ??= Promise.all(this.#owned.map((client) => quitWithin(client, this.#closeTimeout))).then(() => {})
    return this.#closing
  }

  /** Logs the subscriber's losses and recoveries, and restores its subscriptions on every reconnect. */
  #watchSubscriber (): void {
    let connectedBefore = false
    let lostAt: number | undefined
    this.#subscriber.on('close', () => {
      if (this.#closing !== undefined || lostAt !== undefined || !connectedBefore) return
      lostAt = Date.now()
      this.#log.warn({ role: 'subscriber', channels: this.#channels.size }, 'backplane Redis subscriber connection closed; reconnecting')
    })
    this.#subscriber.on('ready', () => {
      if (!connectedBefore) {
        connectedBefore = true
        return
      }
      const downMs = lostAt === undefined ? undefined : Date.now() - lostAt
      lostAt = undefined
      this.#resubscribe()
        .then(() => this.#log.info({ role: 'subscriber', channels: this.#channels.size, downMs }, 'backplane Redis subscriber reconnected and resubscribed'))
        .catch((err: unknown) => this.#log.warn({ err: describeError(err), channels: this.#channels.size }, 'backplane resubscribe failed; retrying on the next reconnect'))
    })
  }

  async #resubscribe (): Promise<void> {
    const channels = [...this.#channels]
    for (let start = 0; start < channels.length; start += RESUBSCRIBE_BATCH) {
      await this.#subscriber.subscribe(...channels.slice(start, start + RESUBSCRIBE_BATCH))
    }
  }
}

/** Error fields that are safe to log: ioredis attaches AUTH arguments to some errors. */
export function describeError (err: unknown): Record<string, unknown> {
  const { name, message, code } = err as Error & { code?: string }
  return { type: name, code, message }
}
