import type { Cluster } from 'ioredis'
import { PublishFailedError, SubscribeFailedError } from '../errors.js'
import { quitWithin } from './quit.js'
import type { Transport, TransportMessageHandler } from './transport.js'

export interface RedisClusterTransportOptions {
  /** Runs SPUBLISH. May be shared with the app. */
  publisher: Cluster
  /** Holds the sharded subscriptions: one subscriber connection per shard, managed by ioredis. */
  subscriber: Cluster
  /** The clients this transport opened and so must quit on close; never the app's. */
  owned: Cluster[]
  /** How long `close()` waits for QUIT before it drops the connections, in milliseconds. */
  closeTimeout: number
}

/**
 * Redis 7 sharded pub/sub on a Redis Cluster: SPUBLISH and SSUBSCRIBE route each channel to
 * the shard that owns its slot, so adding shards adds pub/sub throughput, unlike classic
 * PUBLISH, which the cluster bus copies to every node. ioredis follows slot moves and
 * resubscribes at the new owner; messages published during a move may be lost, as with any
 * Redis pub/sub.
 */
export class RedisClusterTransport implements Transport {
  readonly kind = 'redis-cluster'
  readonly #publisher: Cluster
  readonly #subscriber: Cluster
  readonly #owned: Cluster[]
  readonly #closeTimeout: number
  readonly #channels = new Set<string>()
  #closing: Promise<void> | undefined

  constructor ({ publisher, subscriber, owned, closeTimeout }: RedisClusterTransportOptions) {
    this.#publisher = publisher
    this.#subscriber = subscriber
    this.#owned = owned
    this.#closeTimeout = closeTimeout
  }

  get connected (): boolean {
    return this.#publisher.status === 'ready' && this.#subscriber.status === 'ready'
  }

  get subscribedChannels (): number {
    return this.#channels.size
  }

  /**
   * Drops and reopens the cluster clients this transport owns. ioredis then rebuilds the slot
   * map and its sharded subscribers resubscribe.
   */
  reconnect (): void {
    for (const client of this.#owned) {
      if (client.status === 'ready') client.disconnect(true)
    }
  }

  listen (handler: TransportMessageHandler): void {
    this.#subscriber.on('smessageBuffer', (channel: Buffer, payload: Buffer) => {
      handler(channel.toString('utf8'), payload)
    })
  }

  async publish (channel: string, payload: Buffer): Promise<void> {
    // Without this check ioredis would queue the command until Redis returns. Messages that late
    // are stale, and the queue would grow for as long as the outage lasts.
    if (this.#publisher.status !== 'ready') throw new PublishFailedError(channel, `the Redis connection is ${this.#publisher.status}`)
    try {
      await this.#publisher.spublish(channel, payload)
    } catch (err) {
      throw new PublishFailedError(channel, (err as Error).message)
    }
  }

  async subscribe (channel: string): Promise<void> {
    this.#channels.add(channel)
    try {
      await this.#subscriber.ssubscribe(channel)
    } catch (err) {
      throw new SubscribeFailedError(channel, (err as Error).message)
    }
  }

  async unsubscribe (channel: string): Promise<void> {
    this.#channels.delete(channel)
    if (this.#subscriber.status === 'end') return
    await this.#subscriber.sunsubscribe(channel)
  }

  /** Sums PUBSUB SHARDNUMSUB over the masters, since each shard counts only its own subscribers. */
  async subscriberCount (channel: string): Promise<number> {
    const counts = await Promise.all(this.#publisher.nodes('master').map(async (node) => {
      const reply = await node.call('PUBSUB', 'SHARDNUMSUB', channel) as [string, number]
      return Number(reply[1])
    }))
    return counts.reduce((sum, count) => sum + count, 0)
  }

  async claim (key: string, ttl: number): Promise<boolean> {
    return await this.#publisher.set(key, '1', 'PX', Math.max(1, Math.ceil(ttl)), 'NX') === 'OK'
  }

  close (): Promise<void> {
    this.#closing ??= Promise.all(this.#owned.map((client) => quitWithin(client, this.#closeTimeout))).then(() => {})
    return this.#closing
  }
}
