import assert from 'node:assert/strict'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { test } from 'node:test'
import { jsonHubProtocol, messagePackHubProtocol } from '../src/index.js'
import type { HubConnectionContext } from '../src/index.js'
import { Outbox } from '../src/hub/outbox.js'
import { encodeWebSocketFrame } from '../src/hub/websocket-frame.js'
import type { OutboxConnection } from '../src/hub/outbox.js'
import type { HubProtocol } from '../src/protocol/messages.js'
import { startInstance } from './helpers/instances.js'
import { splitServerFrames } from './helpers/raw-frames.js'
import { connectClient, Received } from './helpers/signalr.js'

/** Encodes `text` as a text or binary frame, as the hub builds them. */
function frame (text: string, binary = false): Buffer {
  return encodeWebSocketFrame(Buffer.from(text), binary)
}

/** A connection that records what the outbox writes to it. */
class RecordingConnection implements OutboxConnection {
  readonly writes: Buffer[] = []
  constructor (readonly id: string, readonly protocol: HubProtocol = jsonHubProtocol) {}

  write (bytes: Buffer, callback: ((err?: Error | null) => void) | undefined): void {
    this.writes.push(bytes)
    callback?.()
  }

  writeBroadcasts (bytes: Buffer): void {
    this.write(bytes, undefined)
  }

  /** Each write as the payloads of its WebSocket messages, as text. */
  get messages (): string[][] {
    return this.writes.map((bytes) => splitServerFrames(bytes).map(({ payload }) => payload.toString()))
  }

  /** Each write's payloads joined, which are the records a client reads from it. */
  get text (): string[] {
    return this.messages.map((payloads) => payloads.join(''))
  }
}

/** A connection whose writes keep the event loop busy for `busyMs`, like many sockets do. */
class SlowConnection extends RecordingConnection {
  /** When the last write started and ended, as `performance.now()` times. */
  lastWrite = { started: 0, ended: 0 }

  constructor (id: string, readonly busyMs: number) {
    super(id)
  }

  override write (bytes: Buffer, callback: ((err?: Error | null) => void) | undefined): void {
    const started = performance.now()
    while (performance.now() < started + this.busyMs);
    this.lastWrite = { started, ended: performance.now() }
    super.write(bytes, callback)
  }
}

/** Waits until `performance.now()` reaches `time`. */
async function waitUntilTime (time: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, time - performance.now())))
  // A timer may fire up to a millisecond early.
  while (performance.now() < time) await nextTurn()
}

async function waitUntil (check: () => boolean, timeout = 5000): Promise<void> {
  const deadline = Date.now() + timeout
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeout} ms`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

function setUp (...connections: RecordingConnection[]): { outbox: Outbox<RecordingConnection>, sendOne: (connection: RecordingConnection, frame: Buffer) => void } {
  const outbox = new Outbox(new Map(connections.map((connection) => [connection.id, connection])), 0)
  return { outbox, sendOne: (connection, frame) => outbox.send(connection, frame) }
}

const json = (text: string): ReadonlyMap<HubProtocol, Buffer> => new Map([[jsonHubProtocol, frame(text)]])

test('broadcasts to all share one buffer', async () => {
  const a = new RecordingConnection('a')
  const b = new RecordingConnection('b')
  const { outbox, sendOne } = setUp(a, b)

  outbox.broadcast(json('1'), new Set(), sendOne)
  outbox.broadcast(json('2'), new Set(), sendOne)
  assert.equal(outbox.queuedBytes(a), 6, 'two frames of 3 bytes')
  assert.deepEqual(a.writes, [], 'nothing is written before the end of the turn')
  await nextTurn()

  assert.deepEqual(a.messages, [['12']], 'one write of one WebSocket message')
  assert.deepEqual(b.messages, [['12']])
  assert.equal(a.writes[0], b.writes[0], 'both sockets are given one shared buffer')
  assert.equal(outbox.queuedBytes(a), 0)
})

test('own frame between broadcasts', async () => {
  const a = new RecordingConnection('a')
  const b = new RecordingConnection('b')
  const { outbox, sendOne } = setUp(a, b)

  outbox.broadcast(json('1'), new Set(), sendOne)
  outbox.send(a, frame('x'))
  outbox.broadcast(json('2'), new Set(), sendOne)
  outbox.send(a, frame('y'))
  await nextTurn()

  assert.deepEqual(a.messages, [['1x2y']], 'its own frames join the broadcasts in one message')
  assert.deepEqual(b.messages, [['12']])
})

test('connection left out of one broadcast', async () => {
  const a = new RecordingConnection('a')
  const b = new RecordingConnection('b')
  const { outbox, sendOne } = setUp(a, b)

  outbox.broadcast(json('1'), new Set(), sendOne)
  outbox.broadcast(json('2'), new Set([a]), sendOne)
  outbox.broadcast(json('3'), new Set(), sendOne)
  await nextTurn()

  assert.deepEqual(a.text, ['13'])
  assert.deepEqual(b.text, ['123'])
})

test('connection joining mid-turn', async () => {
  const a = new RecordingConnection('a')
  const late = new RecordingConnection('late')
  const connections = new Map([['a', a]])
  const outbox = new Outbox(connections, 0)
  const sendOne = (connection: RecordingConnection, frame: Buffer): void => outbox.send(connection, frame)

  outbox.broadcast(json('1'), new Set(), sendOne)
  connections.set('late', late)
  outbox.join(late)
  outbox.send(late, frame('{}'))
  outbox.broadcast(json('2'), new Set(), sendOne)
  await nextTurn()

  assert.deepEqual(a.text, ['12'])
  assert.deepEqual(late.text, ['{}2'])
})

test('one shared buffer per protocol', async () => {
  const a = new RecordingConnection('a', jsonHubProtocol)
  const b = new RecordingConnection('b', messagePackHubProtocol)
  const { outbox, sendOne } = setUp(a, b)

  outbox.broadcast(new Map([[jsonHubProtocol, frame('j')], [messagePackHubProtocol, frame('m', true)]]), new Set(), sendOne)
  outbox.broadcast(json('k'), new Set(), sendOne)
  await nextTurn()

  assert.deepEqual(a.text, ['jk'])
  assert.deepEqual(b.text, ['m'], 'a protocol without a frame receives nothing of that broadcast')
})

test('group members share one buffer', async () => {
  const a = new RecordingConnection('a')
  const b = new RecordingConnection('b')
  const c = new RecordingConnection('c')
  const { outbox, sendOne } = setUp(a, b, c)

  outbox.multicast(json('1'), [a, b], sendOne)
  outbox.multicast(json('2'), [a, b], sendOne)
  assert.equal(outbox.queuedBytes(a), 6, 'two frames of 3 bytes')
  assert.equal(outbox.queuedBytes(c), 0)
  await nextTurn()

  assert.deepEqual(a.text, ['12'])
  assert.deepEqual(b.text, ['12'])
  assert.equal(a.writes[0], b.writes[0], 'both members are given one buffer')
  assert.deepEqual(c.text, [], 'a connection outside the group receives nothing')
})

test('group and all broadcasts in order', async () => {
  const a = new RecordingConnection('a')
  const b = new RecordingConnection('b')
  const c = new RecordingConnection('c')
  const { outbox, sendOne } = setUp(a, b, c)

  outbox.broadcast(json('1'), new Set(), sendOne)
  outbox.multicast(json('2'), [a, b], sendOne)
  outbox.broadcast(json('3'), new Set(), sendOne)
  outbox.multicast(json('4'), [a], sendOne)
  outbox.multicast(json('5'), [b, c], sendOne)
  await nextTurn()

  assert.deepEqual(a.text, ['1234'])
  assert.deepEqual(b.text, ['1235'])
  assert.deepEqual(c.text, ['135'])
})

test('group members sent different frames', async () => {
  const a = new RecordingConnection('a')
  const b = new RecordingConnection('b')
  const c = new RecordingConnection('c')
  const { outbox, sendOne } = setUp(a, b, c)

  outbox.multicast(json('1'), [a, b, c], sendOne)
  outbox.send(a, frame('x'))
  outbox.broadcast(json('2'), new Set([b]), sendOne)
  outbox.multicast(json('3'), [a, b, c], sendOne)
  await nextTurn()

  assert.deepEqual(a.text, ['1x23'], 'a frame of its own keeps its place')
  assert.deepEqual(b.text, ['13'], 'a member left out of a broadcast to all keeps the group frames')
  assert.deepEqual(c.text, ['123'])
})

test('group frames per protocol', async () => {
  const a = new RecordingConnection('a', jsonHubProtocol)
  const b = new RecordingConnection('b', messagePackHubProtocol)
  const { outbox, sendOne } = setUp(a, b)

  outbox.multicast(new Map([[jsonHubProtocol, frame('j')], [messagePackHubProtocol, frame('m', true)]]), [a, b], sendOne)
  outbox.multicast(json('k'), [a, b], sendOne)
  await nextTurn()

  assert.deepEqual(a.text, ['jk'])
  assert.deepEqual(b.text, ['m'], 'a protocol without a frame receives nothing of that broadcast')
})

test('early flush of a group member', async () => {
  const a = new RecordingConnection('a')
  const b = new RecordingConnection('b')
  const { outbox, sendOne } = setUp(a, b)

  outbox.multicast(json('1'), [a, b], sendOne)
  outbox.send(a, frame('close'))
  outbox.flushConnection(a)
  assert.deepEqual(a.text, ['1close'])
  await nextTurn()

  assert.deepEqual(a.text, ['1close'], 'the pass does not repeat what the flush wrote')
  assert.deepEqual(b.text, ['1'])
})

test('group member closed in the pass', async () => {
  const a = new RecordingConnection('a')
  const slow = new RecordingConnection('slow')
  const { outbox, sendOne } = setUp(a, slow)
  // Like a client over its send buffer cap, it is sent a Close instead of the broadcasts.
  slow.writeBroadcasts = () => { outbox.send(slow, frame('close')) }

  outbox.multicast(json('1'), [a, slow], sendOne)
  outbox.broadcast(json('2'), new Set(), sendOne)
  await nextTurn()

  assert.deepEqual(a.text, ['12'])
  assert.deepEqual(slow.text, ['close'], 'the Close does not carry the broadcasts it replaced')
})

test('early flush of one connection', async () => {
  const a = new RecordingConnection('a')
  const b = new RecordingConnection('b')
  const { outbox, sendOne } = setUp(a, b)
  let written = false

  outbox.broadcast(json('1'), new Set(), sendOne)
  outbox.send(a, frame('close'), () => { written = true })
  outbox.flushConnection(a)
  assert.deepEqual(a.text, ['1close'])
  assert.equal(written, true)

  outbox.broadcast(json('2'), new Set(), sendOne)
  await nextTurn()
  assert.deepEqual(a.text, ['1close', '2'])
  assert.deepEqual(b.text, ['12'])
})

test('pacing after a slow pass', async () => {
  const slow = new SlowConnection('slow', 50)
  const outbox = new Outbox(new Map([['slow', slow]]), 1000)
  const sendOne = (connection: SlowConnection, frame: Buffer): void => outbox.send(connection, frame)

  outbox.broadcast(json('1'), new Set(), sendOne)
  outbox.broadcast(json('2'), new Set(), sendOne)
  await nextTurn()
  assert.deepEqual(slow.text, ['12'])

  // The first pass took at least 50 ms, so the second waits at least three times as long: the
  // last two gaps between frames were both shorter than that.
  outbox.broadcast(json('3'), new Set(), sendOne)
  await nextTurn()
  assert.deepEqual(slow.text, ['12'], 'the second pass waits after a slow first one')
  await new Promise((resolve) => setTimeout(resolve, 75))
  assert.deepEqual(slow.text, ['12'], 'the wait is longer than the pass took')
  outbox.broadcast(json('4'), new Set(), sendOne)
  await waitUntil(() => slow.writes.length === 2)
  assert.deepEqual(slow.text, ['12', '34'], 'what arrived meanwhile goes out in one write')
})

/**
 * Broadcasts one frame to a connection whose writes take 100 ms, at `firstSent`. Returns the
 * outbox and `sparseAt`, a time when a frame follows the first by more than the wait, yet comes
 * before the paced pass.
 */
async function afterOneSlowPass () {
  const slow = new SlowConnection('slow', 100)
  const connections = new Map<string, RecordingConnection>([['slow', slow]])
  const outbox = new Outbox(connections, 1000)
  const sendOne = (connection: RecordingConnection, frame: Buffer): void => outbox.send(connection, frame)

  const firstSent = performance.now()
  outbox.broadcast(json('1'), new Set(), sendOne)
  await nextTurn()
  assert.deepEqual(slow.text, ['1'])

  // The next pass may start three pass lengths after the first ended.
  const { started, ended } = slow.lastWrite
  const passWait = 3 * (ended - started)
  return { slow, connections, outbox, sendOne, firstSent, sparseAt: firstSent + passWait + (ended - firstSent) / 2, pacedPassAt: ended + passWait }
}

test('no wait for sparse frames', async () => {
  const { slow, outbox, sendOne, sparseAt, pacedPassAt } = await afterOneSlowPass()

  // A frame sent more than three pass lengths after the one before, but before the paced pass,
  // is written at the end of its turn.
  await waitUntilTime(sparseAt)
  assert.ok(performance.now() < pacedPassAt, 'the test sends the frame before the paced pass would start')
  outbox.broadcast(json('2'), new Set(), sendOne)
  await nextTurn()
  assert.deepEqual(slow.text, ['1', '2'], 'the frame is written without waiting')

  // The third frame comes one pass length after the second, less than the wait, but the gap
  // before that was longer than the wait.
  outbox.broadcast(json('3'), new Set(), sendOne)
  await nextTurn()
  assert.deepEqual(slow.text, ['1', '2', '3'], 'one short gap does not make the pass wait')
})

test('no wait that gathers nothing', async () => {
  const { slow, outbox, sendOne, firstSent } = await afterOneSlowPass()
  const firstPass = slow.lastWrite.ended - slow.lastWrite.started

  // No gap came before the first frame, so the second is written at the end of its turn.
  await waitUntilTime(slow.lastWrite.ended + 1.5 * firstPass)
  const secondSent = performance.now()
  outbox.broadcast(json('2'), new Set(), sendOne)
  await nextTurn()
  assert.deepEqual(slow.text, ['1', '2'])

  // Both gaps before the third frame are shorter than the wait. The gap just before it is also
  // longer than what is left of the wait, so the next frame would likely come after the pass.
  const { started, ended } = slow.lastWrite
  const passWait = 3 * (ended - started)
  const earliestThirdSent = (secondSent + ended + passWait) / 2
  await waitUntilTime((earliestThirdSent + secondSent + passWait) / 2)
  const thirdSent = performance.now()
  assert.ok(secondSent - firstSent < passWait, 'the gap before the second frame is shorter than the wait')
  assert.ok(thirdSent - secondSent < passWait, 'the gap before the third frame is shorter than the wait')
  assert.ok(thirdSent - secondSent > ended + passWait - thirdSent, 'the gap before the third frame is longer than what is left of the wait')
  outbox.broadcast(json('3'), new Set(), sendOne)
  await nextTurn()
  assert.deepEqual(slow.text, ['1', '2', '3'], 'the frame is written without waiting')
})

test('broadcast to own queues counts once', async () => {
  const { slow, connections, outbox, sendOne, sparseAt, pacedPassAt } = await afterOneSlowPass()
  const joining = new RecordingConnection('joining')

  // A sparse broadcast that also reaches a connection with its own queue, the one that joined.
  await waitUntilTime(sparseAt)
  assert.ok(performance.now() < pacedPassAt, 'the test sends the frame before the paced pass would start')
  connections.set('joining', joining)
  outbox.join(joining)
  outbox.broadcast(json('2'), new Set(), sendOne)
  await nextTurn()
  assert.deepEqual(slow.text, ['1', '2'])
  assert.deepEqual(joining.text, ['2'])

  // The next frame comes one pass length later, less than the wait. The gap before the second
  // broadcast was longer than the wait, and its copy for the joining connection is no gap.
  outbox.broadcast(json('3'), new Set(), sendOne)
  await nextTurn()
  assert.deepEqual(slow.text, ['1', '2', '3'], 'the frame is written without waiting')
})

test('no wait for send after join', async () => {
  const { connections, outbox, sparseAt, pacedPassAt } = await afterOneSlowPass()
  const joining = new RecordingConnection('joining')

  // The join schedules a pass that may wait until three pass lengths after the first ended.
  connections.set('joining', joining)
  outbox.join(joining)

  await waitUntilTime(sparseAt)
  assert.ok(performance.now() < pacedPassAt, 'the test sends the frame before the paced pass would start')
  outbox.send(joining, frame('handshake'))
  await nextTurn()
  assert.deepEqual(joining.text, ['handshake'], 'the frame is written without waiting')
})

test('pacing capped by maximumWriteDelay', async () => {
  const slow = new SlowConnection('slow', 30)
  const outbox = new Outbox(new Map([['slow', slow]]), 0)
  const sendOne = (connection: SlowConnection, frame: Buffer): void => outbox.send(connection, frame)

  outbox.broadcast(json('1'), new Set(), sendOne)
  await nextTurn()
  outbox.broadcast(json('2'), new Set(), sendOne)
  await nextTurn()
  assert.deepEqual(slow.text, ['1', '2'], 'with 0, every turn is written at its end')
})

test('hub send order within one turn', async (t) => {
  const app = await startInstance(t, {
    hub: {
      methods: {
        // Everything below is queued in one turn: broadcasts to all and sends to one client.
        Steps (context: HubConnectionContext) {
          void context.clients.all.send('step', 1)
          void context.clients.caller.send('step', 2)
          void context.clients.all.send('step', 3)
          void context.clients.others.send('step', 4)
          void context.clients.all.send('step', 5)
        }
      }
    }
  })

  const caller = await connectClient(app, '/testHub')
  t.after(() => caller.stop())
  const other = await connectClient(app, '/testHub')
  t.after(() => other.stop())
  const callerSteps = new Received<[number]>(caller, 'step')
  const otherSteps = new Received<[number]>(other, 'step')

  await caller.invoke('Steps')
  assert.deepEqual((await callerSteps.waitFor(4)).flat(), [1, 2, 3, 5])
  assert.deepEqual((await otherSteps.waitFor(4)).flat(), [1, 3, 4, 5])
})
