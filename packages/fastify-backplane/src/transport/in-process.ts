import type { Transport, TransportMessageHandler } from './transport.js'

/**
 * A message bus inside one process. Every in-process transport built on the same bus
 * exchanges messages, so several Fastify instances in one process behave like instances
 * sharing a Redis.
 */
export class InProcessBus {
  readonly #subscribers = new Map<string, Set<InProcessTransport>>()
  readonly #claims = new Map<string, number>()

  /** Delivers `payload` to every transport subscribed to `channel`, in publish order. */
  publish (channel: string, payload: Buffer): void {
    const subscribers = this.#subscribers.get(channel)
    if (subscribers === undefined) return
    for (const transport of subscribers) transport.receive(channel, payload)
  }

  /** Records `key` until `ttl` ms from now unless it is already recorded. */
  claim (key: string, ttl: number): boolean {
    const now = Date.now()
    for (const [claimed, expiresAt] of this.#claims) {
      if (expiresAt > now) break
      this.#claims.delete(claimed)
    }
    if ((this.#claims.get(key) ?? 0) > now) return false
    this.#claims.delete(key)
    this.#claims.set(key, now + ttl)
    return true
  }

  count (channel: string): number {
    return this.#subscribers.get(channel)?.size ?? 0
  }

  add (channel: string, transport: InProcessTransport): void {
    let subscribers = this.#subscribers.get(channel)
    if (subscribers === undefined) {
      subscribers = new Set()
      this.#subscribers.set(channel, subscribers)
    }
    subscribers.add(transport)
  }

  remove (channel: string, transport: InProcessTransport): void {
    const subscribers = this.#subscribers.get(channel)
    if (subscribers === undefined) return
    subscribers.delete(transport)
    if (subscribers.size === 0) this.#subscribers.delete(channel)
  }
}

/** The transport for a single instance, or for instances that share one process. */
export class InProcessTransport implements Transport {
  readonly kind = 'in-process'
  readonly #bus: InProcessBus
  readonly #channels = new Set<string>()
  #handler: TransportMessageHandler | undefined
  #closed = false

  constructor (bus: InProcessBus = new InProcessBus()) {
    this.#bus = bus
  }

  get connected (): boolean {
    return !this.#closed
  }

  get subscribedChannels (): number {
    return this.#channels.size
  }

  listen (handler: TransportMessageHandler): void {
    this.#handler = handler
  }

  reconnect (): void {}

  /** Called by the bus. Delivery is deferred to a microtask, as a network transport's would be. */
  receive (channel: string, payload: Buffer): void {
    queueMicrotask(() => {
      if (!this.#closed && this.#channels.has(channel)) this.#handler?.(channel, payload)
    })
  }

  async publish (channel: string, payload: Buffer): Promise<void> {
    if (this.#closed) return
    this.#bus.publish(channel, payload)
  }

  async subscribe (channel: string): Promise<void> {
    if (this.#closed) return
    this.#channels.add(channel)
    this.#bus.add(channel, this)
  }

  async unsubscribe (channel: string): Promise<void> {
    this.#channels.delete(channel)
    this.#bus.remove(channel, this)
  }

  async claim (key: string, ttl: number): Promise<boolean> {
    return this.#bus.claim(key, ttl)
  }

  async subscriberCount (channel: string): Promise<number> {
    return this.#bus.count(channel)
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const channel of this.#channels) this.#bus.remove(channel, this)
    this.#channels.clear()
  }
}
