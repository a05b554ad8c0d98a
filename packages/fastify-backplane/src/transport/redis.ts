import type { Redis } from 'ioredis'
import { PublishFailedError, SubscribeFailedError } from '../errors.js'
import { quitWithin } from './quit.js'
import type { Transport, TransportMessageHandler } from './transport.js'

export interface RedisTransportOptions {
  /** Runs PUBLISH. May be shared with the app. */
  publisher: Redis
  /** A dedicated connection in subscriber mode, which can run no other commands. */
  subscriber: Redis
  /** The connections this transport opened and so must quit on close; never the app's. */
  owned: Redis[]
  /** How long `close()` waits for QUIT before it drops the connections, in milliseconds. */
  closeTimeout: number
}

/**
 * Classic Redis pub/sub: PUBLISH on one connection, SUBSCRIBE on another. ioredis sends
 * commands in call order and resubscribes after a reconnect, which keeps this transport's
 * ordering contract. Nothing is buffered across an outage: publishing fails while the
 * publisher is not connected, and Redis pub/sub is at-most-once.
 */
export class RedisTransport implements Transport {
  readonly kind = 'redis'
  readonly #publisher: Redis
  readonly #subscriber: Redis
  readonly #owned: Redis[]
  readonly #closeTimeout: number
  #closing: Promise<void> | undefined

  constructor ({ publisher, subscriber, owned, closeTimeout }: RedisTransportOptions) {
    this.#publisher = publisher
    this.#subscriber = subscriber
    this.#owned = owned
    this.#closeTimeout = closeTimeout
  }

  get connected (): boolean {
    return this.#publisher.status === 'ready' && this.#subscriber.status === 'ready'
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
      await this.#publisher.publish(channel, payload)
    } catch (err) {
      throw new PublishFailedError(channel, (err as Error).message)
    }
  }

  async subscribe (channel: string): Promise<void> {
    try {
      await this.#subscriber.subscribe(channel)
    } catch (err) {
      throw new SubscribeFailedError(channel, (err as Error).message)
    }
  }

  async unsubscribe (channel: string): Promise<void> {
    if (this.#subscriber.status === 'end') return
    await this.#subscriber.unsubscribe(channel)
  }

  async subscriberCount (channel: string): Promise<number> {
    const reply = await this.#publisher.pubsub('NUMSUB', channel) as [string, number]
    return Number(reply[1])
  }

  async claim (key: string, ttl: number): Promise<boolean> {
    return await this.#publisher.set(key, '1', 'PX', Math.max(1, Math.ceil(ttl)), 'NX') === 'OK'
  }

  close (): Promise<void> {
    this.#closing ??= Promise.all(this.#owned.map((client) => quitWithin(client, this.#closeTimeout))).then(() => {})
    return this.#closing
  }
}
