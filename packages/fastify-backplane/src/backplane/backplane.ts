import type { FastifyBaseLogger } from 'fastify'
import {
  BackplaneClosedError,
  HubNotSpecifiedError,
  InvalidBroadcastError,
  InvalidGroupNameError
} from '../errors.js'
import { jsonHubProtocol } from '../protocol/json.js'
import { MessageType } from '../protocol/messages.js'
import type { HubProtocol } from '../protocol/messages.js'
import type { Transport } from '../transport/transport.js'
import { ChannelNames } from './channels.js'
import { decodeEnvelope, encodeEnvelope, UnsupportedEnvelopeError } from './envelope.js'
import type { Target } from './target.js'
import { ThrottledWarnings } from './throttled-log.js'

/** The longest group name accepted, in UTF-16 code units, so that channel names stay bounded. */
export const MAXIMUM_GROUP_NAME_LENGTH = 1024

/** Options of `broadcast()`. Without `group`, every connection of the hub is a recipient. */
export interface BroadcastOptions {
  /**
   * The hub whose connections receive the message.
   * @default the only hub registered on this instance; required when there is none or several
   */
  hub?: string
  /** Only the members of this group receive the message. */
  group?: string
  /** Connection ids that must not receive the message, such as the caller's. */
  except?: string | readonly string[]
}

/** Invokes `method` with `args` on the target connections of every instance. */
export type BroadcastFunction = (method: string, args?: readonly unknown[], options?: BroadcastOptions) => Promise<void>

/**
 * The part of a hub that the backplane delivers to: the hub owns sockets and groups, the
 * backplane owns channels. Frames arrive encoded, one per protocol.
 */
export interface LocalHub {
  readonly protocols: readonly HubProtocol[]
  deliver (target: Target, frames: ReadonlyMap<string, Buffer>, except: ReadonlySet<string>): void
}

export interface BackplaneSettings {
  transport: Transport
  instanceId: string
  channelPrefix: string
  log: FastifyBaseLogger
}

/**
 * Carries hub messages between instances. It maps targets to channels, encodes each
 * broadcast once per protocol, delivers it to local connections at once, publishes it for the
 * other instances, and drops its own echo when the transport hands it back.
 */
export class Backplane {
  readonly instanceId: string
  readonly #transport: Transport
  readonly #channels: ChannelNames
  readonly #log: FastifyBaseLogger
  readonly #warnings: ThrottledWarnings
  readonly #hubs = new Map<string, LocalHub>()
  readonly #subscriptions = new Map<string, Subscription>()
  #closed = false

  constructor ({ transport, instanceId, channelPrefix, log }: BackplaneSettings) {
    this.instanceId = instanceId
    this.#transport = transport
    this.#channels = new ChannelNames(channelPrefix)
    this.#log = log
    this.#warnings = new ThrottledWarnings(log)
    transport.listen((channel, payload) => this.#receive(channel, payload))
  }

  /** The transport in use: `in-process` or `redis`. */
  get transport (): string {
    return this.#transport.kind
  }

  /** Whether messages can currently reach other instances. Always true in-process until closed. */
  get connected (): boolean {
    return !this.#closed && this.#transport.connected
  }

  get closed (): boolean {
    return this.#closed
  }

  /** Registers a hub of this instance and subscribes to its `all` channel. */
  async attachHub (name: string, hub: LocalHub): Promise<void> {
    this.#hubs.set(name, hub)
    await this.#acquire(this.#channels.forTarget(name, { kind: 'all' }))
  }

  /**
   * Counts one more local member of a group. The instance subscribes to the group's channel on
   * the first member, and the promise settles once that subscription is confirmed, so a
   * broadcast sent afterwards reaches the new member.
   */
  async acquireGroup (hub: string, group: string): Promise<void> {
    validateGroupName(group)
    await this.#acquire(this.#channels.forTarget(hub, { kind: 'group', group }))
  }

  /** Counts one local member less, and unsubscribes from the group's channel after the last. */
  async releaseGroup (hub: string, group: string): Promise<void> {
    await this.#release(this.#channels.forTarget(hub, { kind: 'group', group }))
  }

  /**
   * Implements `fastify.broadcast()`. Every failure, invalid arguments included, rejects the
   * returned promise, and that promise is already handled and logged, so a caller that ignores
   * it never causes an unhandled rejection.
   */
  broadcast (method: string, args: readonly unknown[] = [], options: BroadcastOptions = {}): Promise<void> {
    let sent: Promise<void>
    try {
      sent = this.#broadcast(method, args, options)
    } catch (err) {
      sent = Promise.reject(err)
    }
    sent.catch((err: Error & { code?: string }) => {
      this.#warnings.warn(`broadcast:${err.code ?? err.name}`, { err, method }, 'broadcast failed')
    })
    return sent
  }

  /** Stops receiving, and releases the transport's connections. Idempotent. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#hubs.clear()
    await this.#transport.close()
  }

  #broadcast (method: string, args: readonly unknown[], options: BroadcastOptions): Promise<void> {
    if (this.#closed) throw new BackplaneClosedError()
    if (typeof method !== 'string' || method === '') {
      throw new InvalidBroadcastError('method', `expected a non-empty string, got ${describe(method)}`)
    }
    if (!Array.isArray(args)) {
      throw new InvalidBroadcastError('arguments', `expected an array, got ${describe(args)}`)
    }

    const hubName = this.#resolveHub(options.hub)
    const target = resolveTarget(options)
    const except = resolveExcept(options.except)
    const hub = this.#hubs.get(hubName)
    const frames = encodeInvocation(hub?.protocols ?? [jsonHubProtocol], method, args)

    hub?.deliver(target, frames, new Set(except))
    const envelope = encodeEnvelope({ origin: this.instanceId, hub: hubName, target, except, frames })
    return this.#transport.publish(this.#channels.forTarget(hubName, target), envelope)
  }

  #resolveHub (hub: string | undefined): string {
    if (hub !== undefined) {
      if (typeof hub !== 'string' || hub === '') {
        throw new InvalidBroadcastError('hub', `expected a non-empty string, got ${describe(hub)}`)
      }
      return hub
    }
    if (this.#hubs.size === 1) return this.#hubs.keys().next().value!
    throw new HubNotSpecifiedError(this.#hubs.size === 0 ? 'no hub' : `${this.#hubs.size} hubs (${[...this.#hubs.keys()].join(', ')})`)
  }

  #receive (channel: string, payload: Buffer): void {
    let envelope
    try {
      envelope = decodeEnvelope(payload)
    } catch (err) {
      const key = err instanceof UnsupportedEnvelopeError ? `envelope-version:${err.version}` : 'envelope-invalid'
      this.#warnings.warn(key, { err, channel }, 'dropped a backplane message that cannot be decoded')
      return
    }
    if (envelope.origin === this.instanceId) return
    this.#hubs.get(envelope.hub)?.deliver(envelope.target, envelope.frames, new Set(envelope.except))
  }

  // Subscriptions are reference-counted per channel, so Redis sees one SUBSCRIBE when the first
  // local member arrives and one UNSUBSCRIBE when the last leaves. Both are issued synchronously
  // in call order, so the server ends up in the state of the last call.
  #acquire (channel: string): Promise<void> {
    let subscription = this.#subscriptions.get(channel)
    if (subscription === undefined) {
      subscription = { count: 0, subscribed: undefined }
      this.#subscriptions.set(channel, subscription)
    }
    subscription.count++
    subscription.subscribed ??= this.#subscribe(channel, subscription)
    return subscription.subscribed
  }

  async #subscribe (channel: string, subscription: Subscription): Promise<void> {
    try {
      await this.#transport.subscribe(channel)
    } catch (err) {
      // The next member to arrive tries again instead of inheriting this failure.
      subscription.subscribed = undefined
      throw err
    }
  }

  async #release (channel: string): Promise<void> {
    const subscription = this.#subscriptions.get(channel)
    if (subscription === undefined) return
    if (--subscription.count > 0) return

    this.#subscriptions.delete(channel)
    if (this.#closed) return
    try {
      await this.#transport.unsubscribe(channel)
    } catch (err) {
      // A failed UNSUBSCRIBE leaves at most some extra traffic, which deliver() filters out.
      this.#warnings.warn('unsubscribe', { err, channel }, 'backplane unsubscribe failed')
    }
  }
}

interface Subscription {
  count: number
  /** Settles once the transport has confirmed the subscription. */
  subscribed: Promise<void> | undefined
}

function encodeInvocation (protocols: readonly HubProtocol[], method: string, args: readonly unknown[]): Map<string, Buffer> {
  const frames = new Map<string, Buffer>()
  for (const protocol of protocols) {
    try {
      frames.set(protocol.name, protocol.writeMessage({ type: MessageType.Invocation, target: method, arguments: [...args] }))
    } catch (err) {
      throw new InvalidBroadcastError('arguments', `cannot be encoded with the ${protocol.name} protocol (${(err as Error).message})`)
    }
  }
  return frames
}

function resolveTarget (options: BroadcastOptions): Target {
  if (options.group === undefined) return { kind: 'all' }
  validateGroupName(options.group)
  return { kind: 'group', group: options.group }
}

function resolveExcept (except: BroadcastOptions['except']): string[] {
  if (except === undefined) return []
  const ids = typeof except === 'string' ? [except] : except
  if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string')) {
    throw new InvalidBroadcastError('except', `expected a connection id or an array of them, got ${describe(except)}`)
  }
  return [...ids]
}

/** Throws FST_BACKPLANE_INVALID_GROUP_NAME unless `group` is a non-empty string of bounded length. */
export function validateGroupName (group: unknown): asserts group is string {
  if (typeof group !== 'string' || group === '') {
    throw new InvalidGroupNameError(describe(group), 'expected a non-empty string')
  }
  if (group.length > MAXIMUM_GROUP_NAME_LENGTH) {
    throw new InvalidGroupNameError(`of ${group.length} characters`, `the maximum is ${MAXIMUM_GROUP_NAME_LENGTH}`)
  }
}

function describe (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? value.slice(0, 64) + '…' : value)
  if (Array.isArray(value)) return 'an array'
  return value === null ? 'null' : typeof value
}
