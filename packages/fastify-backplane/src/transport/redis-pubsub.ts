import type { Cluster, Redis } from 'ioredis'
import { PublishFailedError, SubscribeFailedError } from '../errors.js'
import { quitWithin } from './quit.js'
import type { Transport, TransportMessageHandler } from './transport.js'

/** The options both Redis transports take. */
export interface RedisPubSubOptions<TClient extends Redis | Cluster> {
  /** Publishes, and claims keys. May be shared with the app. */
  publisher: TClient
  /** The client in subscriber mode, which can run no other commands. */
  subscriber: TClient
  /** The clients this transport opened and so must quit on close; never the app's. */
  owned: TClient[]
  /** How long `close()` waits for QUIT before it drops the connections, in milliseconds. */
  closeTimeout: number
}

/**
 * The part that classic and sharded Redis pub/sub share: the set of channels the instance
 * should be subscribed to, the state checks that fail a publish at once during an outage, key
 * claims, reconnects and the close. Subclasses send the pub/sub commands of their kind.
 */
export abstract class RedisPubSubTransport<TClient extends Redis | Cluster> implements Transport {
  abstract readonly kind: string
  protected readonly publisher: TClient
  protected readonly subscriber: TClient
  /** The channels this instance should be subscribed to, whatever the connection's state. */
  protected readonly channels = new Set<string>()
  protected closing: Promise<void> | undefined
  readonly #owned: TClient[]
  readonly #closeTimeout: number

  constructor ({ publisher, subscriber, owned, closeTimeout }: RedisPubSubOptions<TClient>) {
    this.publisher = publisher
    this.subscriber = subscriber
    this.#owned = owned
    this.#closeTimeout = closeTimeout
  }

  /** The subscriber's event for a message, with channel and payload as Buffers. */
  protected abstract readonly messageEvent: 'messageBuffer' | 'smessageBuffer'
  protected abstract sendPublish (channel: string, payload: Buffer): Promise<unknown>
  protected abstract sendSubscribe (channel: string): Promise<unknown>
  protected abstract sendUnsubscribe (channel: string): Promise<unknown>
  abstract subscriberCount (channel: string): Promise<number>

  get connected (): boolean {
    return this.publisher.status === 'ready' && this.subscriber.status === 'ready'
  }

  get subscribedChannels (): number {
    return this.channels.size
  }

  listen (handler: TransportMessageHandler): void {
    this.subscriber.on(this.messageEvent, (channel: Buffer, payload: Buffer) => {
      handler(channel.toString('utf8'), payload)
    })
  }

  async publish (channel: string, payload: Buffer): Promise<void> {
    // Without this check ioredis would queue the command until Redis returns. Messages that late
    // are stale, and the queue would grow for as long as the outage lasts.
    if (this.publisher.status !== 'ready') throw new PublishFailedError(channel, `the Redis connection is ${this.publisher.status}`)
    try {
      await this.sendPublish(channel, payload)
    } catch (err) {
      throw new PublishFailedError(channel, (err as Error).message)
    }
  }

  async subscribe (channel: string): Promise<void> {
    this.channels.add(channel)
    try {
      await this.sendSubscribe(channel)
    } catch (err) {
      throw new SubscribeFailedError(channel, (err as Error).message)
    }
  }

  async unsubscribe (channel: string): Promise<void> {
    this.channels.delete(channel)
    if (this.subscriber.status === 'end') return
    await this.sendUnsubscribe(channel)
  }

  async claim (key: string, ttl: number): Promise<boolean> {
    return await this.publisher.set(key, '1', 'PX', Math.max(1, Math.ceil(ttl)), 'NX') === 'OK'
  }

  /**
   * Drops and reopens the clients this transport owns, for a health check that found them
   * unresponsive although their sockets look open. A client still reconnecting is left alone.
   */
  reconnect (): void {
    for (const client of this.#owned) {
      if (client.status === 'ready') client.disconnect(true)
    }
  }

  close (): Promise<void> {
    this.closing ??= Promise.all(this.#owned.map((client) => quitWithin(client, this.#closeTimeout))).then(() => {})
    return this.closing
  }
}
