import type { HubProtocol } from '../protocol/messages.js'
import { joinWebSocketFrames } from './websocket-frame.js'

/** The part of a connection that the outbox uses. `HubConnection` implements it. */
export interface OutboxConnection {
  readonly protocol: HubProtocol | undefined
  /** Writes bytes to the socket; `callback` runs once they are handed to the network. */
  write (bytes: Buffer, callback: ((err?: Error | null) => void) | undefined): void
  /** Writes one pass's broadcasts to all, or closes a client that does not read. */
  writeBroadcasts (bytes: Buffer): void
}

/**
 * How long the outbox waits after a pass, as a multiple of the time the pass took. With 3, a busy
 * event loop spends at most about a quarter of its time writing. `pnpm bench` measured it on a
 * 2-core AMD EPYC virtual machine at 1,000 clients and 100,000 deliveries/s. Against a wait as
 * long as the pass, server CPU per delivery fell by about a fifth, and median latency rose by
 * 1.3 to 2 ms.
 */
const PASS_WAIT_FACTOR = 3

/** Frames waiting for the next pass, and their total length. */
interface FrameList {
  frames: Buffer[]
  bytes: number
}

/** The frames queued for one connection before the next pass, and who waits for them to be written. */
interface Queue extends FrameList {
  callbacks: Array<(err?: Error) => void>
}

/**
 * The frames queued for the connections of one protocol that were sent exactly the same frames
 * since the last pass, such as the members of a group.
 */
interface SharedQueue extends FrameList {
  readonly protocol: HubProtocol
  /** How many connections this queue is for. */
  members: number
}

/**
 * Writes what a hub's connections are sent, one write per socket per pass over the sockets.
 * Each write joins the frames of the pass into as few WebSocket messages as it can (see
 * `joinWebSocketFrames()`), so a client handles one message event for all of them.
 *
 * Writing is most of a busy hub's work: one system call per socket, whatever it carries. So
 * after each pass over the sockets, the next pass waits three times as long as the pass took,
 * at most `maximumWriteDelay`, and the frames that arrive meanwhile share its system calls. A
 * frame waits for that pass only if the last two gaps between frames were both shorter than
 * what is left of the wait, because only then is another frame likely to arrive first.
 * Otherwise it is written at the end of its turn. While frames come more often than every two
 * pass lengths, the passes wait, and until the wait reaches its cap the event loop spends at
 * most about a quarter of its time writing. When frames come less often, each gets a pass of its
 * own, and writing takes at most about half of the time. A pass over a few sockets takes
 * microseconds, so a quiet or small hub writes every turn.
 *
 * A broadcast to every connection is not copied into each connection's queue. The outbox keeps
 * one list of such frames per protocol, and in the next pass each connection that was sent
 * nothing else gets the same concatenated bytes. A broadcast to some connections, such as a
 * group, moves its recipients to shared queues. Recipients that had been sent the same frames
 * before it share one queue afterwards, so the pass joins their frames once. A connection that
 * is sent a frame of its own, or that is left out of a broadcast to all, gets its own queue.
 * That queue starts with what the connection was sent so far. From then on, until the pass,
 * every frame the connection is sent, broadcasts included, goes into it in order.
 */
export class Outbox<TConnection extends OutboxConnection> {
  /** Every connection past the handshake: the recipients of a broadcast to all. */
  readonly #connections: ReadonlyMap<string, TConnection>
  /** The broadcasts to every connection queued for the next pass, per protocol. */
  readonly #broadcasts = new Map<HubProtocol, FrameList>()
  /** The connections that have their own queue until the next pass. */
  readonly #queues = new Map<TConnection, Queue>()
  /** The connections that share a queue until the next pass. */
  #shared = new Map<TConnection, SharedQueue>()
  /** Every shared queue with at least one member, to which a broadcast to all appends. */
  #sharedQueues = new Set<SharedQueue>()
  readonly #maximumWriteDelay: number
  /** Whether a pass is scheduled, at the end of a turn or by `#waitTimer`. */
  #scheduled = false
  /** The timer of a scheduled pass that waits, which a pass due sooner replaces. */
  #waitTimer: ReturnType<typeof setTimeout> | undefined
  /** When the next pass may start, as a `performance.now()` time. */
  #nextPassAt = 0
  /** When a frame was last queued, as a `performance.now()` time. */
  #lastFrameAt = -Infinity
  /** The gap between the last frame and the one before it, in ms. */
  #lastFrameGap = Infinity
  /**
   * Whether a broadcast or multicast is handing its frame to connections with their own queues.
   * Those copies are one arrival, which the broadcast counts once when it is queued.
   */
  #fanningOut = false

  constructor (connections: ReadonlyMap<string, TConnection>, maximumWriteDelay: number) {
    this.#connections = connections
    this.#maximumWriteDelay = maximumWriteDelay
  }

  /** Queues a frame for one connection. */
  send (connection: TConnection, frame: Buffer, callback?: (err?: Error) => void): void {
    const queue = this.#queues.get(connection) ?? this.#separate(connection)
    queue.frames.push(frame)
    queue.bytes += frame.length
    if (callback !== undefined) queue.callbacks.push(callback)
    if (!this.#fanningOut) this.#frameQueued()
  }

  /**
   * Queues a broadcast to every connection but `except`, with one frame per protocol. A
   * protocol without a frame in `frames` receives nothing.
   */
  broadcast (frames: ReadonlyMap<HubProtocol, Buffer>, except: ReadonlySet<TConnection>, sendOne: (connection: TConnection, frame: Buffer) => void): void {
    for (const connection of except) this.#queues.get(connection) ?? this.#separate(connection)
    this.#fanningOut = true
    try {
      for (const connection of this.#queues.keys()) {
        if (except.has(connection) || connection.protocol === undefined) continue
        const frame = frames.get(connection.protocol)
        if (frame !== undefined) sendOne(connection, frame)
      }
    } finally {
      this.#fanningOut = false
    }
    // Every member of a shared queue receives this broadcast, because `except` left theirs above.
    for (const queue of this.#sharedQueues) {
      const frame = frames.get(queue.protocol)
      if (frame === undefined) continue
      queue.frames.push(frame)
      queue.bytes += frame.length
    }
    for (const [protocol, frame] of frames) {
      let list = this.#broadcasts.get(protocol)
      if (list === undefined) {
        list = { frames: [], bytes: 0 }
        this.#broadcasts.set(protocol, list)
      }
      list.frames.push(frame)
      list.bytes += frame.length
    }
    this.#frameQueued()
  }

  /**
   * Queues a broadcast to `recipients`, with one frame per protocol. A recipient that has its own
   * queue gets the frame through `sendOne`. The others move to shared queues, so that the
   * recipients that shared a queue before, or that had been sent only broadcasts to all, share
   * one afterwards. A protocol without a frame in `frames` receives nothing.
   */
  multicast (frames: ReadonlyMap<HubProtocol, Buffer>, recipients: Iterable<TConnection>, sendOne: (connection: TConnection, frame: Buffer) => void): void {
    // The queue that recipients move to, keyed by the shared queue they leave, or by their
    // protocol for those that had none.
    const destinations = new Map<SharedQueue | HubProtocol, SharedQueue>()
    this.#fanningOut = true
    try {
      for (const connection of recipients) {
        const protocol = connection.protocol
        const frame = protocol === undefined ? undefined : frames.get(protocol)
        if (protocol === undefined || frame === undefined) continue
        if (this.#queues.has(connection)) {
          sendOne(connection, frame)
          continue
        }

        const current = this.#shared.get(connection)
        const key = current ?? protocol
        let destination = destinations.get(key)
        if (destination === undefined) {
          const before = current ?? this.#broadcasts.get(protocol)
          destination = { protocol, frames: [...before?.frames ?? [], frame], bytes: (before?.bytes ?? 0) + frame.length, members: 0 }
          destinations.set(key, destination)
          this.#sharedQueues.add(destination)
        }
        if (current !== undefined) this.#leave(current)
        destination.members++
        this.#shared.set(connection, destination)
      }
    } finally {
      this.#fanningOut = false
    }
    this.#frameQueued()
  }

  /**
   * Gives a connection that has just completed its handshake an empty queue, so that it receives
   * none of the broadcasts queued before it joined.
   */
  join (connection: TConnection): void {
    if (!this.#queues.has(connection)) this.#queues.set(connection, { frames: [], bytes: 0, callbacks: [] })
    // The pass only has to clear the queue, so it need not come sooner than the paced one.
    this.#schedule(this.#nextPassAt - performance.now())
  }

  /** Bytes queued for a connection and not yet written. */
  queuedBytes (connection: TConnection): number {
    const queue = this.#queues.get(connection) ?? this.#shared.get(connection)
    if (queue !== undefined) return queue.bytes
    return connection.protocol === undefined ? 0 : this.#broadcasts.get(connection.protocol)?.bytes ?? 0
  }

  /** Writes a connection's queue now, before the next pass, as a Close requires. */
  flushConnection (connection: TConnection): void {
    let queue = this.#queues.get(connection)
    if (queue === undefined) {
      queue = this.#separate(connection)
      // Until the next pass removes the queue, it keeps the broadcasts written below from
      // reaching this connection a second time.
      this.#schedule(this.#nextPassAt - performance.now())
    }
    if (queue.frames.length === 0) return
    const bytes = joinWebSocketFrames(queue.frames)
    const callbacks = queue.callbacks
    queue.frames = []
    queue.bytes = 0
    queue.callbacks = []
    connection.write(bytes, settleAll(callbacks))
  }

  /**
   * Gives a connection its own queue, which starts with the frames it was sent so far. The caller
   * schedules the pass.
   */
  #separate (connection: TConnection): Queue {
    const shared = this.#shared.get(connection)
    const before = shared ?? (connection.protocol === undefined ? undefined : this.#broadcasts.get(connection.protocol))
    const queue: Queue = { frames: [...before?.frames ?? []], bytes: before?.bytes ?? 0, callbacks: [] }
    if (shared !== undefined) {
      this.#shared.delete(connection)
      this.#leave(shared)
    }
    this.#queues.set(connection, queue)
    return queue
  }

  /** Counts one member less for a shared queue, and removes the queue once it has none. */
  #leave (queue: SharedQueue): void {
    queue.members--
    if (queue.members === 0) this.#sharedQueues.delete(queue)
  }

  /**
   * Schedules the pass for a frame queued now. The pass waits for `#nextPassAt` only if the last
   * two gaps between frames were both shorter than what is left of the wait, because only then
   * is another frame likely to arrive before it. A broadcast or multicast counts as one frame,
   * however many queues it reaches.
   */
  #frameQueued (): void {
    const now = performance.now()
    const gap = now - this.#lastFrameAt
    const remainingWait = this.#nextPassAt - now
    const frequent = Math.max(gap, this.#lastFrameGap) < remainingWait
    this.#lastFrameAt = now
    this.#lastFrameGap = gap
    this.#schedule(frequent ? remainingWait : 0)
  }

  /**
   * Schedules the next pass `wait` ms from now, or at the end of this turn. A pass at the end of
   * the turn replaces one that waits, such as the pass a `join()` scheduled.
   */
  #schedule (wait = 0): void {
    // Timers fire no sooner than 1 ms, so a shorter wait ends with this turn instead.
    if (wait >= 1) {
      if (this.#scheduled) return
      this.#scheduled = true
      this.#waitTimer = setTimeout(() => {
        this.#waitTimer = undefined
        this.#flush()
      }, wait)
      return
    }
    if (this.#waitTimer !== undefined) {
      clearTimeout(this.#waitTimer)
      this.#waitTimer = undefined
    } else if (this.#scheduled) {
      return
    }
    this.#scheduled = true
    setImmediate(() => this.#flush())
  }

  #flush (): void {
    this.#scheduled = false
    const started = performance.now()
    // The shared queues are taken out before any write, like the broadcasts below. A connection
    // closed while they are written then queues its Close alone, without repeating them.
    const shared = this.#shared
    this.#shared = new Map()
    this.#sharedQueues = new Set()
    if (this.#broadcasts.size > 0) {
      const joined = new Map<HubProtocol, Buffer>()
      for (const [protocol, list] of this.#broadcasts) joined.set(protocol, joinWebSocketFrames(list.frames))
      this.#broadcasts.clear()
      // This loop runs once per socket, so it skips the lookups it can: the queue checks when no
      // connection has a queue, and the protocol's bytes while the protocol stays the same.
      const separate = this.#queues.size > 0 || shared.size > 0
      let protocol: HubProtocol | undefined
      let bytes: Buffer | undefined
      for (const connection of this.#connections.values()) {
        if (separate && (this.#queues.has(connection) || shared.has(connection))) continue
        if (connection.protocol !== protocol) {
          protocol = connection.protocol
          bytes = protocol === undefined ? undefined : joined.get(protocol)
        }
        if (bytes !== undefined) connection.writeBroadcasts(bytes)
      }
    }
    const joinedShared = new Map<SharedQueue, Buffer>()
    for (const [connection, queue] of shared) {
      let bytes = joinedShared.get(queue)
      if (bytes === undefined) {
        bytes = joinWebSocketFrames(queue.frames)
        joinedShared.set(queue, bytes)
      }
      connection.writeBroadcasts(bytes)
    }
    // A connection closed while writing above queues its Close here, and is written below.
    for (const connection of this.#queues.keys()) this.flushConnection(connection)
    this.#queues.clear()

    const finished = performance.now()
    this.#nextPassAt = finished + Math.min((finished - started) * PASS_WAIT_FACTOR, this.#maximumWriteDelay)
  }
}

/** Returns one write callback that settles every waiting callback, or undefined when none waits. */
function settleAll (callbacks: Array<(err?: Error) => void>): ((err?: Error | null) => void) | undefined {
  if (callbacks.length === 0) return undefined
  return (err) => { for (const callback of callbacks) callback(err ?? undefined) }
}
