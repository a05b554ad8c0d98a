// The load generator, a child process of the runner. It opens the clients of one system under
// test, counts the payloads of the current step and measures latency on a sample of clients.
// It also reports its own CPU use, so that a saturated generator shows in the results.
import { performance } from 'node:perf_hooks'
import { clientConnectors } from './lib/clients.js'
import { nowMicroseconds, readSentMicroseconds, readStep } from './lib/payload.js'
import { delay, serveRequests } from './lib/rpc.js'

/** Connections opened at once; more would overflow the servers' listen backlog. */
const CONNECT_CONCURRENCY = 100
/** Each client pings this often. */
const PING_INTERVAL_MS = 10_000
/**
 * The ping interval is cut into this many slots, and each slot pings its share of the clients,
 * as clients on their own timers would. Pinging every client in one loop sent each server a burst
 * of 500 messages every 10 seconds, and in one run at 100,000 deliveries/s the latency samples
 * right after it reached 37 ms, against a p99 of 14 ms.
 */
const PING_SLOTS = 100

let clients = []
let pingTimer

const counters = {
  step: -1,
  received: 0,
  /** Payloads of another step: late arrivals from an earlier one. */
  stale: 0,
  /** Payloads that reached a client outside the target group. */
  misdelivered: 0,
  /** Clients whose connection closed without the load generator closing it, in all. */
  unexpectedCloses: 0,
  /** `unexpectedCloses` when the last step finished, so that each step reports its own. */
  unexpectedClosesReported: 0,
  lastArrival: 0,
  latencies: new Float64Array(1 << 16),
  /** The index of the server whose client took each latency sample: 0 for server A, the sender. */
  latencyServers: new Uint8Array(1 << 16),
  latencyCount: 0
}

function recordLatency (milliseconds, server) {
  if (counters.latencyCount === counters.latencies.length) {
    const larger = new Float64Array(counters.latencies.length * 2)
    larger.set(counters.latencies)
    counters.latencies = larger
    const largerServers = new Uint8Array(larger.length)
    largerServers.set(counters.latencyServers)
    counters.latencyServers = largerServers
  }
  counters.latencyServers[counters.latencyCount] = server
  counters.latencies[counters.latencyCount++] = milliseconds
}

function createPayloadHandler (role, server) {
  if (role === 'outsider') {
    return () => { counters.misdelivered++ }
  }
  if (role === 'sampler') {
    return (source, offset) => {
      counters.lastArrival = performance.now()
      if (readStep(source, offset) !== counters.step) {
        counters.stale++
        return
      }
      counters.received++
      recordLatency((nowMicroseconds() - readSentMicroseconds(source, offset)) / 1000, server)
    }
  }
  return (source, offset) => {
    counters.lastArrival = performance.now()
    if (readStep(source, offset) === counters.step) counters.received++
    else counters.stale++
  }
}

/**
 * Spreads the samplers evenly over the members, alternating between the two servers. Servers
 * write to their sockets in connection order, so samplers taken from the front would see only
 * the first writes of each fan-out.
 */
function samplerIndexes (members, samplers) {
  const indexes = new Set()
  for (let k = 0; k < Math.min(samplers, members); k++) {
    let index = Math.floor((k * members) / samplers)
    if (index % 2 !== k % 2 && index + 1 < members) index++
    indexes.add(index)
  }
  return indexes
}

/**
 * Opens `members` clients that receive the broadcasts, `samplers` of which measure latency,
 * and `outsiders` clients outside `group` that must receive nothing. Client i connects to
 * ports[i % 2], so each server hosts half of each kind.
 */
async function connect ({ system, ports, members, outsiders = 0, samplers, group, timeoutMs = 15_000 }) {
  const connector = clientConnectors[system]
  if (connector === undefined) throw new Error(`unknown system "${system}"`)
  const roles = new Array(members).fill('counter')
  for (const index of samplerIndexes(members, samplers)) roles[index] = 'sampler'
  for (let index = 0; index < outsiders; index++) roles.push('outsider')

  const started = performance.now()
  const onClose = () => { counters.unexpectedCloses++ }
  for (let first = 0; first < roles.length; first += CONNECT_CONCURRENCY) {
    const batch = roles.slice(first, first + CONNECT_CONCURRENCY).map((role, offset) => {
      const server = (first + offset) % ports.length
      return connector({
        port: ports[server],
        group: role === 'outsider' ? undefined : group,
        onPayload: createPayloadHandler(role, server),
        onClose,
        timeoutMs
      })
    })
    clients.push(...await Promise.all(batch))
  }

  clearInterval(pingTimer)
  // Each tick sends every Ping due by then, so a late tick catches up. A generator that reads
  // hundreds of thousands of deliveries per second was seen to run its timers once per two seconds.
  const pingsStarted = performance.now()
  let pinged = 0
  pingTimer = setInterval(() => {
    if (clients.length === 0) return
    const due = Math.floor(((performance.now() - pingsStarted) / PING_INTERVAL_MS) * clients.length)
    for (; pinged < due; pinged++) clients[pinged % clients.length].ping()
  }, PING_INTERVAL_MS / PING_SLOTS)
  return { connected: clients.length, seconds: (performance.now() - started) / 1000 }
}

async function disconnect () {
  clearInterval(pingTimer)
  const closing = clients
  clients = []
  for (let first = 0; first < closing.length; first += 500) {
    await Promise.all(closing.slice(first, first + 500).map((client) => client.close()))
  }
  return { closed: closing.length }
}

let stepStarted
/**
 * Waits until no payload arrived for `quietMs` (at most `settleMs`), so that the backlog of a
 * failed step does not slow the next one, then starts counting `step`.
 */
async function beginStep ({ step, quietMs = 250, settleMs = 10_000 }) {
  const deadline = performance.now() + settleMs
  while (performance.now() - counters.lastArrival < quietMs && performance.now() < deadline) await delay(25)
  counters.step = step
  counters.received = 0
  counters.stale = 0
  counters.misdelivered = 0
  counters.latencyCount = 0
  stepStarted = { time: performance.now(), cpu: process.cpuUsage(), eventLoop: performance.eventLoopUtilization() }
  return { settled: performance.now() < deadline }
}

/**
 * Waits until `expected` payloads of the step arrived, or none arrived for `quietMs`, or
 * `drainMs` passed, then summarises the step.
 */
async function finishStep ({ expected, drainMs = 3000, quietMs = 1000 }) {
  const drainStarted = performance.now()
  let lastCount = -1
  let lastProgress = drainStarted
  while (counters.received < expected) {
    const now = performance.now()
    if (counters.received !== lastCount) {
      lastCount = counters.received
      lastProgress = now
    }
    if (now - drainStarted >= drainMs || now - lastProgress >= quietMs) break
    await delay(10)
  }

  const seconds = (performance.now() - stepStarted.time) / 1000
  // Closes between two steps count toward the later one, whose clients they took away.
  const closes = counters.unexpectedCloses - counters.unexpectedClosesReported
  counters.unexpectedClosesReported = counters.unexpectedCloses
  const cpu = process.cpuUsage(stepStarted.cpu)
  const eventLoop = performance.eventLoopUtilization(stepStarted.eventLoop)
  return {
    received: counters.received,
    expected,
    lost: Math.max(0, expected - counters.received),
    stale: counters.stale,
    misdelivered: counters.misdelivered,
    unexpectedCloses: closes,
    drainSeconds: (performance.now() - drainStarted) / 1000,
    latencyMs: summariseLatencies(counters.latencies.subarray(0, counters.latencyCount)),
    latencyMsByServer: [0, 1].map((server) => summariseLatencies(
      counters.latencies.subarray(0, counters.latencyCount).filter((_, index) => counters.latencyServers[index] === server)
    )),
    generator: {
      cpuCores: (cpu.user + cpu.system) / 1e6 / seconds,
      eventLoopUtilization: eventLoop.utilization
    }
  }
}

function summariseLatencies (samples) {
  if (samples.length === 0) return { samples: 0 }
  const sorted = Float64Array.from(samples).sort()
  const at = (quantile) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * quantile))]
  const round = (value) => Math.round(value * 100) / 100
  return {
    samples: sorted.length,
    p50: round(at(0.5)),
    p90: round(at(0.9)),
    p99: round(at(0.99)),
    p999: round(at(0.999)),
    max: round(sorted[sorted.length - 1])
  }
}

serveRequests({
  connect,
  disconnect,
  begin: beginStep,
  finish: finishStep,
  sample: () => ({ cpu: process.cpuUsage(), memory: process.memoryUsage(), clients: clients.length }),
  async stop () {
    await disconnect()
    setTimeout(() => process.exit(0), 50)
  }
})
