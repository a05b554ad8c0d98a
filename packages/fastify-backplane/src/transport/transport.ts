/** Receives every message published on a channel this transport is subscribed to. */
export type TransportMessageHandler = (channel: string, payload: Buffer) => void

/**
 * Moves opaque bytes between instances on named channels. A transport has no notion of hubs,
 * groups or sockets, because the backplane above it decides what to publish and subscribe to.
 *
 * Contract for implementations:
 * - Messages published by one instance reach each subscriber in publish order.
 * - A publisher also receives its own messages when it is subscribed to the channel.
 * - `subscribe` and `unsubscribe` take effect in call order; the promise settles when the
 *   server has confirmed the change.
 */
export interface Transport {
  /** `in-process` or `redis`, for logs and health checks. */
  readonly kind: string
  /** Whether messages currently flow to and from other instances. */
  readonly connected: boolean
  /** Sets the single handler for incoming messages. Call once, before subscribing. */
  listen (handler: TransportMessageHandler): void
  publish (channel: string, payload: Buffer): Promise<void>
  subscribe (channel: string): Promise<void>
  unsubscribe (channel: string): Promise<void>
  /**
   * Records `key` for `ttl` milliseconds unless it is already recorded, atomically across
   * instances. Returns true if this call recorded it.
   */
  claim (key: string, ttl: number): Promise<boolean>
  /** Counts the instances subscribed to `channel`, this one included. */
  subscriberCount (channel: string): Promise<number>
  /** The number of channels the transport is subscribed to. */
  readonly subscribedChannels: number
  /**
   * Drops and reopens the transport's own connections, after a health check found them
   * unresponsive. Transports without connections do nothing.
   */
  reconnect (): void
  /** Stops delivery and releases the connections this transport opened. Idempotent. */
  close (): Promise<void>
}
