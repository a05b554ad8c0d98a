import { isIPv6 } from 'node:net'
import { InvalidOptionError } from '../errors.js'
import { describeValue } from '../describe-value.js'

/**
 * Counts one hub's open connections on this instance, in total and per client address, from
 * the upgrade request until the socket closes. A connection that has not finished its
 * handshake counts too, so that sockets which never send one cannot exhaust the instance.
 */
export class ConnectionLimiter {
  readonly #maximumConnections: number
  readonly #maximumPerAddress: number
  readonly #perAddress = new Map<string, number>()
  #connections = 0

  constructor (maximumConnections: number, maximumPerAddress: number) {
    this.#maximumConnections = maximumConnections
    this.#maximumPerAddress = maximumPerAddress
  }

  get connections (): number {
    return this.#connections
  }

  /**
   * Whether connections also count per address. Only then do callers need to pass the
   * address, so that without a per-address limit no request has to look its address up.
   */
  get countsAddresses (): boolean {
    return this.#maximumPerAddress !== Infinity
  }

  /**
   * Reserves a place for a connection from `address`, an `addressKey()`, or undefined when
   * addresses are not counted. Returns the limit that is already reached, or undefined once the
   * place is reserved. The caller releases each reservation once, with the same address; the
   * limiter does not check this, and a second release would free another connection's place.
   */
  reserve (address: string | undefined): 'instance' | 'address' | undefined {
    if (this.#connections >= this.#maximumConnections) return 'instance'
    if (address === undefined) {
      this.#connections++
      return undefined
    }
    const fromAddress = this.#perAddress.get(address) ?? 0
    if (fromAddress >= this.#maximumPerAddress) return 'address'
    this.#connections++
    this.#perAddress.set(address, fromAddress + 1)
    return undefined
  }

  release (address: string | undefined): void {
    this.#connections--
    if (address === undefined) return
    const remaining = (this.#perAddress.get(address) ?? 1) - 1
    if (remaining <= 0) this.#perAddress.delete(address)
    else this.#perAddress.set(address, remaining)
  }
}

/**
 * Returns the key under which connections from `address` count. An IPv4 address counts on its
 * own, also in its IPv4-mapped IPv6 form. An IPv6 address counts with its /64 network, because
 * one host usually has a whole /64 to pick addresses from.
 */
export function addressKey (address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped !== null) return mapped[1]!
  if (!isIPv6(address)) return address
  return `${expandIPv6(address).slice(0, 4).join(':')}::/64`
}

/** Expands an IPv6 address into its eight 16-bit groups, in lowercase hexadecimal without leading zeros. */
function expandIPv6 (address: string): string[] {
  const withoutZone = address.split('%')[0]!
  const [head = '', tail] = withoutZone.split('::')
  const headGroups = head === '' ? [] : head.split(':')
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':')
  const missing = 8 - headGroups.length - tailGroups.length
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(Math.max(0, missing)).fill('0'), ...tailGroups]
  return groups.map((group) => (group.includes('.') ? group : parseInt(group, 16).toString(16)))
}

/**
 * A token bucket: `rate` tokens per second, at most `capacity` stored. Each invocation takes
 * one, so a client may send `capacity` invocations at once and `rate` per second after that.
 */
export class TokenBucket {
  readonly #rate: number
  readonly #capacity: number
  #tokens: number
  #updatedAt: number

  constructor (rate: number, capacity: number, now = performance.now()) {
    this.#rate = rate
    this.#capacity = capacity
    this.#tokens = capacity
    this.#updatedAt = now
  }

  /** Whether the bucket has refilled completely, which means the client paused long enough. */
  isFull (now = performance.now()): boolean {
    this.#refill(now)
    return this.#tokens >= this.#capacity
  }

  /** Takes one token. Returns false, and takes nothing, when the bucket is empty. */
  take (now = performance.now()): boolean {
    this.#refill(now)
    if (this.#tokens < 1) return false
    this.#tokens--
    return true
  }

  #refill (now: number): void {
    const elapsed = Math.max(0, now - this.#updatedAt) / 1000
    this.#tokens = Math.min(this.#capacity, this.#tokens + elapsed * this.#rate)
    this.#updatedAt = now
  }
}

/**
 * Reads a limit option: a positive integer, or Infinity to turn the limit off where the
 * option allows it.
 */
export function resolveLimit (options: object, key: string, fallback: number, allowInfinity = false): number {
  const configured = (options as Record<string, unknown>)[key]
  const value = configured === undefined ? fallback : configured
  const valid = typeof value === 'number' && value > 0 && (Number.isInteger(value) || (allowInfinity && value === Infinity))
  if (!valid) {
    const fix = allowInfinity ? `Pass a positive integer, Infinity to turn the limit off, or leave it out for ${fallback}.` : `Pass a positive integer, or leave it out for ${fallback}.`
    throw new InvalidOptionError(key, `expected a positive integer, got ${describeValue(value)}`, fix)
  }
  return value
}
