// The measurements: one paced step, the rate ladder built from steps, and idle memory per
// connection. `bench` is { system, servers: [A, B], loadGenerator, redis, nextStep, quietWaitMs,
// retryDeadline }: no step is retried after `retryDeadline` (a performance.now() time).
import { MAXIMUM_STEP } from './payload.js'
import { machineCpuSeconds, processCpuSeconds } from './processes.js'
import { delay } from './rpc.js'

/** A step passes only if its p99 end-to-end latency is at most this, in ms. */
export const LATENCY_LIMIT_MS = 50
/** A step fails if server A sent its last broadcast this late, as a share of the step's duration. */
const PUBLISHER_LAG_LIMIT = 0.1
/** Generator CPU, in cores, from which a step's result may reflect the generator, not the server. */
export const GENERATOR_SATURATION_CORES = 0.9
/**
 * Share of the step during which the generator's event loop was busy, from which a step's result
 * may also reflect the generator. It includes time the generator waited for a core.
 */
export const GENERATOR_SATURATION_UTILIZATION = 0.9
/**
 * CPU, in cores, that processes outside the benchmark may use, or the hypervisor may take away,
 * during a step before a failure of that step counts as disturbed and is retried.
 */
export const DISTURBANCE_CORES = 0.2
/** CPU, in cores, that may be used or taken that way over one second for the machine to count as quiet. */
const QUIET_CORES = 0.1

/** Returns the cores that a step lost to processes outside the benchmark and to the hypervisor. */
export function disturbanceCores (cpuCores) {
  return Math.round((cpuCores.otherProcesses + (cpuCores.stolen ?? 0)) * 100) / 100
}

const DRAIN_MS = 3000
const DRAIN_QUIET_MS = 1000

async function sampleCpu (bench) {
  const [a, b] = await Promise.all(bench.servers.map((server) => server.request('sample')))
  const generator = await bench.loadGenerator.request('sample')
  return { time: performance.now(), a: a.cpu, b: b.cpu, generator: generator.cpu, redis: processCpuSeconds(bench.redis.pid), machine: machineCpuSeconds() }
}

function coresBetween (before, after) {
  const seconds = (after.time - before.time) / 1000
  const cores = (start, end) => Math.round(((end.user + end.system - start.user - start.system) / 1e6 / seconds) * 100) / 100
  const result = {
    serverA: cores(before.a, after.a),
    serverB: cores(before.b, after.b),
    generator: cores(before.generator, after.generator),
    redis: before.redis === undefined || after.redis === undefined ? 0 : Math.round(((after.redis - before.redis) / seconds) * 100) / 100
  }
  // CPU that other processes on the machine used meanwhile, and CPU time that the hypervisor
  // gave to other virtual machines on the same host (steal), during which nothing here ran.
  const busy = (after.machine.busy - before.machine.busy) / seconds
  result.otherProcesses = Math.max(0, Math.round((busy - result.serverA - result.serverB - result.generator - result.redis) * 100) / 100)
  result.stolen = Math.round(((after.machine.stolen - before.machine.stolen) / seconds) * 100) / 100
  return result
}

/** Returns the CPU time that servers A and B used between two samples, in microseconds. */
function serverCpuMicroseconds (before, after) {
  const used = (start, end) => end.user + end.system - start.user - start.system
  return used(before.a, after.a) + used(before.b, after.b)
}

/**
 * Publishes `deliveriesPerSecond / fanout` broadcasts per second from server A for `durationMs`
 * and returns what the clients received. `group` makes it a group broadcast.
 */
export async function runStep (bench, { scenario, deliveriesPerSecond, fanout, durationMs, group }) {
  if (bench.nextStep > MAXIMUM_STEP) throw new Error(`step number ${bench.nextStep} does not fit the payload`)
  const step = bench.nextStep++
  const rate = deliveriesPerSecond / fanout
  const [serverA] = bench.servers

  await bench.loadGenerator.request('begin', { step }, 20_000)
  const before = await sampleCpu(bench)
  const published = await serverA.request('publish', { step, rate, durationMs, group }, durationMs + 20_000)
  const finished = await bench.loadGenerator.request('finish', { expected: published.sent * fanout, drainMs: DRAIN_MS, quietMs: DRAIN_QUIET_MS }, DRAIN_MS + 20_000)
  const after = await sampleCpu(bench)

  const lastDueMs = ((published.total - 1) / rate) * 1000
  const publisherLagMs = Math.round(published.seconds * 1000 - lastDueMs)
  const cpuCores = coresBetween(before, after)
  const generatorEventLoopUtilization = Math.round(finished.generator.eventLoopUtilization * 100) / 100
  const failures = []
  if (published.sent < published.total) failures.push(`server A sent ${published.sent} of ${published.total} broadcasts in time`)
  if (publisherLagMs > PUBLISHER_LAG_LIMIT * durationMs) failures.push(`server A fell ${publisherLagMs} ms behind schedule`)
  if (finished.lost > 0) failures.push(`${finished.lost} of ${finished.expected} deliveries lost`)
  if (finished.misdelivered > 0) failures.push(`${finished.misdelivered} deliveries to clients outside the group`)
  // A SignalR server closes a client that sent nothing for its client timeout, which a generator
  // too busy to send its Pings can cause. The closed clients miss every later step's deliveries.
  if (finished.unexpectedCloses > 0) failures.push(`the server closed ${finished.unexpectedCloses} clients`)
  if (!(finished.latencyMs.p99 <= LATENCY_LIMIT_MS)) failures.push(`p99 ${finished.latencyMs.p99} ms > ${LATENCY_LIMIT_MS} ms`)

  return {
    step,
    scenario,
    fanout,
    deliveriesPerSecond,
    broadcastsPerSecond: Math.round(rate * 100) / 100,
    durationMs,
    sent: published.sent,
    publisherLagMs,
    largestBurst: published.largestBurst,
    received: finished.received,
    lost: finished.lost,
    stale: finished.stale,
    misdelivered: finished.misdelivered,
    unexpectedCloses: finished.unexpectedCloses,
    deliveredPerSecond: Math.round(finished.received / (durationMs / 1000)),
    latencyMs: finished.latencyMs,
    // Latency of the clients of server A (the sender), then of server B.
    latencyMsByServer: finished.latencyMsByServer,
    cpuCores,
    serverCpuMicrosecondsPerDelivery: finished.received === 0
      ? null
      : Math.round((serverCpuMicroseconds(before, after) / finished.received) * 100) / 100,
    generatorEventLoopUtilization,
    generatorSaturated: cpuCores.generator >= GENERATOR_SATURATION_CORES || generatorEventLoopUtilization >= GENERATOR_SATURATION_UTILIZATION,
    disturbed: disturbanceCores(cpuCores) > DISTURBANCE_CORES,
    passed: failures.length === 0,
    failures
  }
}

/**
 * Waits until processes outside the benchmark use at most QUIET_CORES over one second, for at
 * most `bench.quietWaitMs`. Returns whether the machine became quiet.
 */
export async function waitForQuietMachine (bench) {
  const deadline = performance.now() + bench.quietWaitMs
  while (performance.now() < deadline) {
    const before = await sampleCpu(bench)
    await delay(1000)
    const after = await sampleCpu(bench)
    if (disturbanceCores(coresBetween(before, after)) <= QUIET_CORES) return true
  }
  return false
}

/**
 * Runs the fixed-rate step once. A run during which other processes used more than
 * DISTURBANCE_CORES runs again once the machine is quiet, up to `disturbedRetries` times, and
 * the least disturbed attempt counts. Returns that attempt and the number of tries.
 */
export async function runFixedRateStep (bench, { disturbedRetries, onStep, ...step }) {
  const tries = []
  for (let index = 0; index <= disturbedRetries; index++) {
    if (index > 0 && performance.now() > bench.retryDeadline) break
    if (index > 0) await waitForQuietMachine(bench)
    const result = await runStep(bench, step)
    onStep(result)
    tries.push(result)
    if (!result.disturbed) break
  }
  const run = tries.reduce((least, result) => disturbanceCores(result.cpuCores) < disturbanceCores(least.cpuCores) ? result : least)
  return { run, attempts: tries.length }
}

/**
 * Returns the run with the median p99 of `runs`, with every run's latency and CPU beside it.
 * One 10-second run varies by about a fifth near saturation, which is as large as the
 * differences between systems, so one run is not enough.
 */
export function medianRunByP99 (runs, attempts) {
  const byP99 = [...runs].sort((a, b) => a.latencyMs.p99 - b.latencyMs.p99)
  const median = byP99[Math.floor((byP99.length - 1) / 2)]
  return {
    ...median,
    attempts,
    runs: runs.map((result) => ({ round: result.round, step: result.step, latencyMs: result.latencyMs, latencyMsByServer: result.latencyMsByServer, cpuCores: result.cpuCores, serverCpuMicrosecondsPerDelivery: result.serverCpuMicrosecondsPerDelivery }))
  }
}

/** Rounds a rate to two significant digits, so that ladder rates read well. */
function roundRate (value) {
  const magnitude = 10 ** (Math.floor(Math.log10(value)) - 1)
  return Math.round(value / magnitude) * magnitude
}

/**
 * Runs a step until it passes or its retries run out, and returns whether it passed. A failure
 * during which other processes used more than DISTURBANCE_CORES is retried up to
 * `ladder.disturbedRetries` times, each once the machine is quiet again. With
 * `ladder.retryFailed`, any other failure is retried once. Every attempt goes to `steps`.
 */
async function attemptStep (bench, steps, { ladder, onStep, ...step }) {
  let disturbedRetries = 0
  let retried = false
  for (;;) {
    const result = await runStep(bench, step)
    result.retry = disturbedRetries > 0 || retried
    steps.push(result)
    onStep(result)
    if (result.passed) return true
    if (performance.now() > bench.retryDeadline) return false
    if (result.disturbed && disturbedRetries < ladder.disturbedRetries) {
      disturbedRetries++
      await waitForQuietMachine(bench)
    } else if (ladder.retryFailed && !retried) {
      retried = true
    } else {
      return false
    }
  }
}

/**
 * Finds the highest delivery rate that passes: doubles from `ladder.start` until
 * `ladder.failuresToStop` (1 when unset) doublings in a row fail or `ladder.max` is passed,
 * then bisects (geometrically) between the highest pass and the lowest failure above it
 * `ladder.refinements` times. If nothing passed, it halves the rate from `ladder.start` down to
 * `ladder.min` instead. Retries follow `attemptStep()`.
 *
 * More than one failure in a row is needed where p99 does not rise with the rate. At 5,000
 * clients it can fall from one broadcast per second to dozens, and then a first step that fails
 * by a millisecond would hide rates many times higher that pass.
 */
export async function runLadder (bench, { scenario, fanout, group, ladder, stepMs, onStep }) {
  const steps = []
  const attempt = (deliveriesPerSecond) =>
    attemptStep(bench, steps, { ladder, onStep, scenario, deliveriesPerSecond, fanout, durationMs: stepMs, group })

  let passed
  let failed
  let consecutiveFailures = 0
  for (let deliveries = ladder.start; deliveries <= ladder.max; deliveries *= 2) {
    if (await attempt(deliveries)) {
      passed = deliveries
      failed = undefined
      consecutiveFailures = 0
    } else {
      failed ??= deliveries
      consecutiveFailures++
      if (consecutiveFailures >= (ladder.failuresToStop ?? 1)) break
    }
  }
  for (let deliveries = ladder.start / 2; passed === undefined && deliveries >= ladder.min; deliveries /= 2) {
    if (await attempt(deliveries)) passed = deliveries
    else failed = deliveries
  }
  if (passed !== undefined && failed !== undefined) {
    for (let round = 0; round < ladder.refinements; round++) {
      const middle = roundRate(Math.sqrt(passed * failed))
      if (middle <= passed || middle >= failed) break
      if (await attempt(middle)) passed = middle
      else failed = middle
    }
  }

  const best = steps.filter((step) => step.passed && step.deliveriesPerSecond === passed).at(-1)
  // The failure that bounds the result: the lowest failed rate above the result.
  const bounding = steps.filter((step) => !step.passed && step.deliveriesPerSecond > (passed ?? 0))
  const lowestFailedRate = Math.min(...bounding.map((step) => step.deliveriesPerSecond))
  const firstFailure = bounding.filter((step) => step.deliveriesPerSecond === lowestFailedRate).at(-1)
  return {
    scenario,
    fanout,
    maxDeliveriesPerSecond: passed ?? 0,
    lowestRateTried: Math.min(...steps.map((step) => step.deliveriesPerSecond)),
    reachedLadderMax: failed === undefined,
    atMax: best === undefined ? null : summariseStep(best),
    atFirstFailure: firstFailure === undefined ? null : summariseStep(firstFailure),
    steps
  }
}

function summariseStep (step) {
  return {
    deliveriesPerSecond: step.deliveriesPerSecond,
    latencyMs: step.latencyMs,
    lost: step.lost,
    cpuCores: step.cpuCores,
    disturbed: step.disturbed,
    serverCpuMicrosecondsPerDelivery: step.serverCpuMicrosecondsPerDelivery,
    generatorEventLoopUtilization: step.generatorEventLoopUtilization,
    generatorSaturated: step.generatorSaturated,
    failures: step.failures
  }
}

/**
 * Measures RSS and heap per idle connection: both servers after full garbage collections,
 * before and after the load generator opens `connections` clients split over them.
 */
export async function measureIdleMemory (bench, { connections, settleMs = 3000 }) {
  const before = await Promise.all(bench.servers.map((server) => server.request('memory')))
  const connected = await bench.loadGenerator.request('connect', {
    system: bench.system,
    ports: bench.servers.map((server) => server.port),
    members: connections,
    samplers: 0
  }, 600_000)
  await delay(settleMs)
  const after = await Promise.all(bench.servers.map((server) => server.request('memory')))
  await bench.loadGenerator.request('disconnect', {}, 120_000)

  const growth = (field) => after.reduce((sum, reading, index) => sum + reading.memory[field] - before[index].memory[field], 0)
  const perConnectionKiB = (field) => Math.round((growth(field) / connections / 1024) * 100) / 100
  return {
    connections,
    connectSeconds: Math.round(connected.seconds * 10) / 10,
    gcExposed: after.every((reading) => reading.gcExposed),
    rssKiBPerConnection: perConnectionKiB('rss'),
    heapUsedKiBPerConnection: perConnectionKiB('heapUsed'),
    heapTotalKiBPerConnection: perConnectionKiB('heapTotal'),
    externalKiBPerConnection: perConnectionKiB('external'),
    rssMiBBefore: before.map((reading) => Math.round(reading.memory.rss / 2 ** 20)),
    rssMiBAfter: after.map((reading) => Math.round(reading.memory.rss / 2 ** 20))
  }
}
