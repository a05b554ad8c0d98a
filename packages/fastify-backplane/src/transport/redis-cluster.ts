import type { Cluster } from 'ioredis'
import { RedisPubSubTransport } from './redis-pubsub.js'
import type { RedisPubSubOptions } from './redis-pubsub.js'

export type RedisClusterTransportOptions = RedisPubSubOptions<Cluster>

/**
 * Redis 7 sharded pub/sub on a Redis Cluster: SPUBLISH and SSUBSCRIBE route each channel to
 * the shard that owns its slot, so adding shards adds pub/sub throughput, unlike classic
 * PUBLISH, which the cluster bus copies to every node. The subscriber client opens one
 * connection per shard. ioredis follows slot moves and resubscribes at the new owner, and
 * rebuilds the slot map after `reconnect()`. Messages published during a move may be lost, as
 * with any Redis pub/sub.
 */
export class RedisClusterTransport extends RedisPubSubTransport<Cluster> {
  readonly kind = 'redis-cluster'
  protected readonly messageEvent = 'smessageBuffer'

  protected sendPublish (channel: string, payload: Buffer): Promise<unknown> {
    return this.publisher.spublish(channel, payload)
  }

  protected sendSubscribe (channel: string): Promise<unknown> {
    return this.subscriber.ssubscribe(channel)
  }

  protected sendUnsubscribe (channel: string): Promise<unknown> {
    return this.subscriber.sunsubscribe(channel)
  }

  /** Sums PUBSUB SHARDNUMSUB over the masters, since each shard counts only its own subscribers. */
  async subscriberCount (channel: string): Promise<number> {
    const counts = await Promise.all(this.publisher.nodes('master').map(async (node) => {
      const reply = await node.call('PUBSUB', 'SHARDNUMSUB', channel) as [string, number]
      return Number(reply[1])
    }))
    return counts.reduce((sum, count) => sum + count, 0)
  }
}
