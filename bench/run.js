// Benchmarks fastify-backplane against Socket.IO with its Redis adapter and two raw `ws` +
// ioredis references (the floor and the coalescing server). Each system runs as two server
// processes on one redis-server, which this runner starts on a free loopback port. A separate
// load-generator process opens the clients. BENCHMARKS.md describes what is measured and why.
//
//   pnpm bench                full run: the fixed rate in five rounds, the systems taking
//                             turns; ladders at 1,000 and 5,000 clients; memory at 10,000
//   pnpm bench:quick          the fixed rate once and the ladder at 1,000 clients; regression checks
//   pnpm bench:profile        fastify-backplane's servers under `node --cpu-prof` at the fixed
//                             rate; --fanout=N and --rate=N (deliveries/s) change the load
//
// Options: --systems=fastify-backplane,floor runs a subset; adding signalr-minimal also runs the
// minimal SignalR server of servers/signalr-minimal.js. BENCH_MIN_RATIO_TO_FLOOR and
// BENCH_MAX_CPU_RATIO_TO_FLOOR override the regression thresholds. BENCH_REFERENCE_PUBLISH_FIRST=1
// makes the floor and coalescing servers publish before they write to their own sockets, as
// fastify-backplane does, and the JSON results record it. Every step, drain and
// connect has a time limit, and a watchdog ends the whole run, so the run ends by itself.
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism, loadavg, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
import { summariseProfile } from './profile-summary.js'
import { DEFAULT_SYSTEMS, SYSTEMS, startLoadGenerator, startRedis, startServers, stopAll } from './lib/processes.js'
import { formatReport, median, ratioToFloor, roundByRoundRatios, SUBJECT } from './lib/report.js'
import { DISTURBANCE_CORES, disturbanceCores, GENERATOR_SATURATION_CORES, GENERATOR_SATURATION_UTILIZATION, LATENCY_LIMIT_MS, measureIdleMemory, medianRunByP99, runFixedRateStep, runLadder, runStep } from './lib/scenarios.js'

/**
 * The regression check: a run fails when fastify-backplane's highest delivery rate at 1,000
 * clients, divided by the floor's, is below this. BENCHMARKS.md explains the value.
 */
const MIN_RATIO_TO_FLOOR = Number(process.env.BENCH_MIN_RATIO_TO_FLOOR ?? 2.5)
/**
 * The second regression check: when the ladder check cannot decide, a run fails when
 * fastify-backplane's server CPU per delivery at the fixed rate, divided by the floor's from the
 * same round, is above this (the median over the rounds). BENCHMARKS.md explains the value.
 */
const MAX_CPU_RATIO_TO_FLOOR = Number(process.env.BENCH_MAX_CPU_RATIO_TO_FLOOR ?? 1.05)

const modes = {
  full: {
    allFanouts: [1000, 5000],
    groupFanouts: [1000, 5000],
    stepMs: 5000,
    ladder: { start: 10_000, min: 5000, max: 2_560_000, failuresToStop: 2, refinements: 3, retryFailed: true, disturbedRetries: 3 },
    fixedRate: { deliveriesPerSecond: 100_000, fanout: 1000, durationMs: 10_000, rounds: 5, disturbedRetries: 3 },
    idleConnections: 10_000,
    quietWaitMs: 30_000,
    retryBudgetMs: Infinity,
    watchdogMs: 90 * 60_000
  },
  quick: {
    allFanouts: [1000],
    groupFanouts: [],
    stepMs: 2000,
    // Fewer retries and shorter waits than the full run, and no retry once a system has run for
    // retryBudgetMs, so that the run ends within 3 minutes.
    ladder: { start: 10_000, min: 5000, max: 2_560_000, failuresToStop: 1, refinements: 2, retryFailed: true, disturbedRetries: 1 },
    fixedRate: { deliveriesPerSecond: 100_000, fanout: 1000, durationMs: 4000, rounds: 1, disturbedRetries: 1 },
    idleConnections: 0,
    quietWaitMs: 10_000,
    retryBudgetMs: 35_000,
    watchdogMs: 6 * 60_000
  },
  profile: {
    allFanouts: [],
    groupFanouts: [],
    fixedRate: { deliveriesPerSecond: 100_000, fanout: 1000, durationMs: 20_000, rounds: 1, disturbedRetries: 0 },
    idleConnections: 0,
    quietWaitMs: 0,
    retryBudgetMs: 0,
    watchdogMs: 6 * 60_000
  }
}

const WARMUP = { deliveriesPerSecond: 20_000, durationMs: 1000 }
const GROUP = 'bench-room'
const resultsDirectory = fileURLToPath(new URL('results/', import.meta.url))

function parseArguments (argv) {
  const options = { mode: 'full', systems: DEFAULT_SYSTEMS }
  for (const argument of argv) {
    if (argument === '--quick') options.mode = 'quick'
    else if (argument === '--profile') options.mode = 'profile'
    else if (argument.startsWith('--systems=')) options.systems = argument.slice('--systems='.length).split(',')
    else if (argument.startsWith('--fanout=')) options.fanout = positiveInteger(argument, '--fanout=')
    else if (argument.startsWith('--rate=')) options.rate = positiveInteger(argument, '--rate=')
    else throw new Error(`unknown argument "${argument}"; expected --quick, --profile, --systems=a,b, --fanout=N or --rate=N`)
  }
  const unknown = options.systems.filter((system) => !SYSTEMS.includes(system))
  if (unknown.length > 0) throw new Error(`unknown system "${unknown[0]}"; expected one of ${SYSTEMS.join(', ')}`)
  if (options.mode === 'profile') options.systems = [SUBJECT]
  if ((options.fanout !== undefined || options.rate !== undefined) && options.mode !== 'profile') {
    throw new Error('--fanout and --rate apply to --profile only')
  }
  return options
}

function positiveInteger (argument, prefix) {
  const value = Number(argument.slice(prefix.length))
  if (!Number.isInteger(value) || value <= 0) throw new Error(`invalid ${argument}: expected a positive integer`)
  return value
}

function log (message) {
  process.stderr.write(`${message}\n`)
}

function describeMachine (redisVersion) {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8')
  const field = (name) => new RegExp(`^${name}\\s*:\\s*(.+)$`, 'm').exec(cpuinfo)?.[1]
  // Virtual machines often report a bare "AMD EPYC", so the family, model and clock tell them apart.
  const cpuModel = field('model name') ?? 'unknown'
  const cpu = { family: field('cpu family'), model: field('model'), mhz: Number(field('cpu MHz')) || undefined }
  const fileLimit = (flag) => Number(execFileSync('/bin/sh', ['-c', `ulimit ${flag}`], { encoding: 'utf8' }).trim())
  return {
    nproc: availableParallelism(),
    cpuModel,
    cpu,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    redis: redisVersion,
    openFileLimit: { soft: fileLimit('-Sn'), hard: fileLimit('-Hn') }
  }
}

/**
 * Names the build of fastify-backplane under test, and the work tree's commit and uncommitted
 * files, which describe that build unless BENCH_FASTIFY_BACKPLANE_MODULE points elsewhere.
 */
function describeSubject () {
  // GIT_OPTIONAL_LOCKS=0 keeps `git status` from refreshing the index of the work tree.
  const git = (...args) => execFileSync('git', args, { encoding: 'utf8', env: { ...process.env, GIT_OPTIONAL_LOCKS: '0' } }).trim()
  const subject = { module: process.env.BENCH_FASTIFY_BACKPLANE_MODULE ?? 'packages/fastify-backplane/dist/index.js' }
  try {
    subject.workTreeCommit = git('rev-parse', 'HEAD')
    subject.workTreeUncommittedFiles = git('status', '--porcelain', '--', 'packages/fastify-backplane').split('\n').filter(Boolean).length
  } catch (err) {
    subject.gitError = err.message
  }
  subject.jsonOnly = process.env.BENCH_FASTIFY_JSON_ONLY === '1'
  if (process.env.BENCH_MAXIMUM_WRITE_DELAY !== undefined) subject.maximumWriteDelay = Number(process.env.BENCH_MAXIMUM_WRITE_DELAY)
  return subject
}

/** Returns the library build under test for the log: its module, or its commit and uncommitted files. */
function describeBuild (subject) {
  if (process.env.BENCH_FASTIFY_BACKPLANE_MODULE !== undefined) return `library ${subject.module}`
  if (subject.workTreeCommit === undefined) return `library of an unknown commit (${subject.gitError})`
  const uncommitted = subject.workTreeUncommittedFiles > 0 ? ` with ${subject.workTreeUncommittedFiles} uncommitted files in packages/fastify-backplane` : ''
  return `library of commit ${subject.workTreeCommit.slice(0, 7)}${uncommitted}`
}

/** Returns the latency samplers for a fan-out: 5 % of the clients, from 10 to 100. */
function samplersFor (fanout) {
  return Math.min(100, Math.max(10, Math.round(fanout * 0.05)))
}

function describeStep (system, step) {
  const latency = step.latencyMs.samples > 0 ? `p50 ${step.latencyMs.p50} p99 ${step.latencyMs.p99} max ${step.latencyMs.max} ms` : 'no samples'
  const cores = step.cpuCores
  return `[${system}] ${step.scenario} ×${step.fanout} ${step.deliveriesPerSecond.toLocaleString('en-US')}/s${step.retry ? ' (retry)' : ''}: ` +
    `${latency}, lost ${step.lost}, cpu gen ${cores.generator} (event loop ${step.generatorEventLoopUtilization}) ` +
    `A ${cores.serverA} B ${cores.serverB} redis ${cores.redis} other processes ${cores.otherProcesses} stolen ${cores.stolen}, ` +
    `server ${step.serverCpuMicrosecondsPerDelivery} µs/delivery ` +
    `→ ${step.passed ? 'pass' : `FAIL (${step.failures.join('; ')})`}${step.disturbed ? ' [disturbed by other processes or steal]' : ''}`
}

/** Connects clients, runs a warm-up step, runs `measure`, and disconnects the clients. */
async function withClients (bench, { fanout, group, outsiders = 0 }, measure) {
  const connected = await bench.loadGenerator.request('connect', {
    system: bench.system,
    ports: bench.servers.map((server) => server.port),
    members: fanout,
    outsiders,
    samplers: samplersFor(fanout),
    group
  }, 600_000)
  log(`[${bench.system}] connected ${connected.connected} clients in ${connected.seconds.toFixed(1)} s`)
  const scenario = group === undefined ? 'all' : 'group'
  await runStep(bench, { scenario, fanout, group, ...WARMUP })
  try {
    return await measure()
  } finally {
    await bench.loadGenerator.request('disconnect', {}, 120_000)
  }
}

/** Returns the machine's load averages over 1, 5 and 15 minutes, rounded to two decimals. */
function roundedLoadAverage () {
  return loadavg().map((value) => Math.round(value * 100) / 100)
}

/**
 * Starts `system`'s two servers and a load generator, passes them to `use` as a bench, and
 * stops them all when it settles.
 */
async function withProcesses (system, redis, config, { nodeOptions, retryDeadline }, use) {
  const servers = await startServers(system, redis.url, { nodeOptions })
  const bench = { system, servers, loadGenerator: startLoadGenerator(), redis, nextStep: 1, quietWaitMs: config.quietWaitMs, retryDeadline }
  try {
    return await use(bench)
  } finally {
    await Promise.all([bench.loadGenerator.stop(), ...servers.map((server) => server.stop())])
  }
}

/** Runs the ladders of `system`, then measures its idle memory. */
async function benchmarkSystem (system, redis, config) {
  const result = { loadAverage: { before: roundedLoadAverage() }, ladders: [] }
  const onStep = (step) => log(describeStep(system, step))
  const retryDeadline = performance.now() + config.retryBudgetMs
  await withProcesses(system, redis, config, { retryDeadline }, async (bench) => {
    for (const fanout of config.allFanouts) {
      await withClients(bench, { fanout }, async () => {
        result.ladders.push(await runLadder(bench, { scenario: 'all', fanout, ladder: config.ladder, stepMs: config.stepMs, onStep }))
      })
    }
    for (const fanout of config.groupFanouts) {
      // As many clients outside the group as in it, so the servers must select the members.
      await withClients(bench, { fanout, group: GROUP, outsiders: fanout }, async () => {
        result.ladders.push(await runLadder(bench, { scenario: 'group', fanout, group: GROUP, ladder: config.ladder, stepMs: config.stepMs, onStep }))
      })
    }
  })

  if (config.idleConnections > 0) {
    // Fresh processes, so the ladders' buffers and garbage do not blur the memory readings.
    result.idleMemory = await withProcesses(system, redis, config, { retryDeadline }, (bench) =>
      measureIdleMemory(bench, { connections: idleConnectionCount(config.idleConnections) }))
    log(`[${system}] idle memory: ${result.idleMemory.rssKiBPerConnection} KiB RSS per connection`)
  }
  result.loadAverage.after = roundedLoadAverage()
  return result
}

/**
 * Runs the fixed-rate step of every system in `systems`, taking turns: each round gives each
 * system one run, and the order moves on by one system from round to round. Each run has fresh
 * servers and a fresh load generator, which connect the clients and run the warm-up step first.
 * A system's runs are spread over the whole phase, so a change in the machine's speed meanwhile
 * affects every system alike. On the virtual machines of BENCHMARKS.md, the floor's p99 at
 * 100,000/s ranged from 18 to 38 ms within one hour. Returns each system's median run (see
 * medianRunByP99()), and the error of each system that failed, whose later runs are skipped.
 */
async function runFixedRateInTurns (systems, redis, config, { nodeOptions } = {}) {
  const { rounds, ...fixedRate } = config.fixedRate
  const bySystem = new Map(systems.map((system) => [system, { runs: [], attempts: 0 }]))
  const errors = {}
  for (let round = 1; round <= rounds; round++) {
    const order = systems.map((_, index) => systems[(index + round - 1) % systems.length])
    log(`fixed rate, round ${round} of ${rounds}: ${order.join(', ')}`)
    for (const system of order) {
      if (errors[system] !== undefined) continue
      const onStep = (step) => log(describeStep(system, step))
      try {
        const retryDeadline = performance.now() + config.retryBudgetMs
        const { run, attempts } = await withProcesses(system, redis, config, { nodeOptions, retryDeadline }, (bench) =>
          withClients(bench, { fanout: fixedRate.fanout }, () => runFixedRateStep(bench, { scenario: 'all', ...fixedRate, onStep })))
        bySystem.get(system).runs.push({ ...run, round })
        bySystem.get(system).attempts += attempts
      } catch (err) {
        log(`[${system}] fixed rate failed: ${err.stack ?? err}`)
        errors[system] = `fixed rate: ${err.message ?? err}`
      }
    }
  }
  const medians = {}
  for (const [system, { runs, attempts }] of bySystem) {
    if (runs.length > 0) medians[system] = medianRunByP99(runs, attempts)
  }
  return { medians, errors }
}

/** Returns the idle connections to open, fewer if the open-file limit would not allow them. */
function idleConnectionCount (requested) {
  const hard = Number(execFileSync('/bin/sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim())
  const available = hard - 200
  if (Number.isNaN(hard) || requested <= available) return requested
  log(`NOTE: the open-file hard limit is ${hard}, so the memory scenario opens ${available} connections instead of ${requested}`)
  return available
}

/** Runs fastify-backplane's servers under `node --cpu-prof` at the fixed rate and summarises the profiles. */
async function profile (redis, config, stamp) {
  const directory = `${resultsDirectory}profiles/${stamp}`
  mkdirSync(directory, { recursive: true })
  const nodeOptions = (label) => ['--cpu-prof', `--cpu-prof-dir=${directory}`, `--cpu-prof-name=server-${label}.cpuprofile`]
  const loadAverage = { before: roundedLoadAverage() }
  const { medians, errors } = await runFixedRateInTurns([SUBJECT], redis, config, { nodeOptions })
  if (errors[SUBJECT] !== undefined) throw new Error(errors[SUBJECT])
  loadAverage.after = roundedLoadAverage()
  const profiles = {}
  for (const label of ['A', 'B']) {
    profiles[label] = summariseProfile(JSON.parse(readFileSync(`${directory}/server-${label}.cpuprofile`, 'utf8')))
  }
  return { loadAverage, fixedRate: medians[SUBJECT], profiles, profileDirectory: directory }
}

async function main () {
  const options = parseArguments(process.argv.slice(2))
  if (!(MIN_RATIO_TO_FLOOR > 0)) throw new Error(`invalid BENCH_MIN_RATIO_TO_FLOOR "${process.env.BENCH_MIN_RATIO_TO_FLOOR}": expected a positive number`)
  if (!(MAX_CPU_RATIO_TO_FLOOR > 0)) throw new Error(`invalid BENCH_MAX_CPU_RATIO_TO_FLOOR "${process.env.BENCH_MAX_CPU_RATIO_TO_FLOOR}": expected a positive number`)
  const config = modes[options.mode]
  if (options.mode === 'profile') {
    config.fixedRate.fanout = options.fanout ?? config.fixedRate.fanout
    config.fixedRate.deliveriesPerSecond = options.rate ?? config.fixedRate.deliveriesPerSecond
  }
  const watchdog = setTimeout(() => {
    log(`the run exceeded its ${config.watchdogMs / 60_000} min limit; stopping every process it started`)
    stopAll().finally(() => process.exit(2))
  }, config.watchdogMs)
  watchdog.unref()

  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  const redis = await startRedis()
  const results = {
    mode: options.mode,
    startedAt: new Date().toISOString(),
    command: `node bench/run.js ${process.argv.slice(2).join(' ')}`.trim(),
    machine: describeMachine(redis.version),
    subject: describeSubject(),
    settings: { ...config, warmup: WARMUP, latencyLimitMs: LATENCY_LIMIT_MS, disturbanceCores: DISTURBANCE_CORES, payloadBytes: 64, minRatioToFloor: MIN_RATIO_TO_FLOOR, maxCpuRatioToFloor: MAX_CPU_RATIO_TO_FLOOR, referencesPublishFirst: process.env.BENCH_REFERENCE_PUBLISH_FIRST === '1' },
    systems: {},
    errors: {}
  }
  log(`bench ${options.mode}: ${results.machine.nproc} × ${results.machine.cpuModel} (family ${results.machine.cpu.family}, model ${results.machine.cpu.model}, ${results.machine.cpu.mhz} MHz), Node ${results.machine.node}, redis ${redis.version} on port ${redis.port}, load ${loadavg()[0].toFixed(2)}, ${describeBuild(results.subject)}`)

  try {
    if (options.mode === 'profile') {
      try {
        results.systems[SUBJECT] = await profile(redis, config, stamp)
      } catch (err) {
        log(`[${SUBJECT}] failed: ${err.stack ?? err}`)
        results.errors[SUBJECT] = String(err.message ?? err)
      }
    } else {
      // The fixed-rate runs come first. Each starts fresh processes, so the ladders do not affect them.
      const { medians, errors } = await runFixedRateInTurns(options.systems, redis, config)
      Object.assign(results.errors, errors)
      for (const system of options.systems) {
        const result = { fixedRate: medians[system] }
        results.systems[system] = result
        try {
          Object.assign(result, await benchmarkSystem(system, redis, config))
        } catch (err) {
          log(`[${system}] failed: ${err.stack ?? err}`)
          results.errors[system] = [results.errors[system], String(err.message ?? err)].filter(Boolean).join('; ')
        }
      }
    }
  } finally {
    await redis.stop()
    await stopAll()
  }
  results.finishedAt = new Date().toISOString()

  mkdirSync(resultsDirectory, { recursive: true })
  const json = JSON.stringify(results, null, 2) + '\n'
  writeFileSync(`${resultsDirectory}${options.mode}-${stamp}.json`, json)
  writeFileSync(`${resultsDirectory}latest-${options.mode}.json`, json)
  log(`results written to bench/results/${options.mode}-${stamp}.json and bench/results/latest-${options.mode}.json`)

  if (options.mode === 'profile') {
    console.log(formatProfiles(results.systems[SUBJECT]?.profiles))
    return Object.keys(results.errors).length > 0 ? 2 : 0
  }
  console.log(formatReport(results))
  return checkRegression(results)
}

function formatProfiles (profiles) {
  if (profiles === undefined) return 'no profile was recorded'
  return Object.entries(profiles).map(([label, summary]) => [
    `Server ${label}: ${summary.totalMs} ms sampled, ${summary.busyMs} ms busy, ${summary.idlePercent} % idle`,
    'Self time by package (% of busy):',
    ...summary.byCategory.map((entry) => `  ${entry.selfPercent.toFixed(1).padStart(5)} %  ${entry.category}`),
    'Functions with the most self time (% of busy):',
    ...summary.topSelf.map((entry) => `  ${entry.selfPercent.toFixed(1).padStart(5)} %  ${entry.function}  ${entry.location}  [${entry.category}]`),
    'fastify-backplane functions by total time, callees included (% of busy):',
    ...summary.libraryTotal.map((entry) => `  ${entry.totalPercent.toFixed(1).padStart(5)} %  ${entry.function}  ${entry.location}`)
  ].join('\n')).join('\n\n')
}

/**
 * Runs the regression checks and returns the exit code. It is 1 when a check that counts fails,
 * else 2 when a system failed to run, else 3 when a check measured something other than
 * fastify-backplane's servers, and 0 otherwise. The CPU check counts only when the ladder check
 * did not decide, because it was skipped or the load generator or other processes bounded the
 * ladder.
 */
function checkRegression (results) {
  const ladder = checkLadder(results)
  const verdicts = [ladder, checkServerCpu(results, { counts: ladder !== 'pass' && ladder !== 'fail' })]
  if (verdicts.includes('fail')) return 1
  if (Object.keys(results.errors).length > 0) return 2
  if (verdicts.includes('inconclusive')) return 3
  return 0
}

/**
 * Checks fastify-backplane's highest rate for broadcasts to all 1,000 clients against the
 * floor's. Returns 'pass', 'fail', 'inconclusive' when other processes and steal disturbed the
 * failure that bounded its ladder or the load generator was saturated there, or undefined when
 * a ladder is missing.
 */
function checkLadder (results) {
  const ratio = ratioToFloor(results, 'all', 1000)
  if (ratio === undefined) {
    log('regression check of the ladder skipped: it needs the fastify-backplane and floor ladders for broadcasts to all 1,000 clients')
    return undefined
  }
  const summary = `${SUBJECT} ÷ floor, highest rate for broadcasts to all 1,000 clients = ${ratio.toFixed(2)} (minimum ${MIN_RATIO_TO_FLOOR})`
  if (ratio >= MIN_RATIO_TO_FLOOR) {
    console.log(`\nRegression check: ${summary}: pass`)
    return 'pass'
  }
  const bounding = results.systems[SUBJECT].ladders.find((ladder) => ladder.scenario === 'all' && ladder.fanout === 1000).atFirstFailure
  if (bounding?.disturbed === true) {
    console.log(`\nRegression check: ${summary}: inconclusive, because other processes and steal took ${disturbanceCores(bounding.cpuCores)} cores ` +
      `during the failure that bounded ${SUBJECT}'s ladder. Rerun on a quieter machine.`)
    return 'inconclusive'
  }
  if (bounding?.generatorSaturated === true) {
    console.log(`\nRegression check: ${summary}: inconclusive, because the load generator used ${bounding.cpuCores.generator} cores ` +
      `and its event loop was busy ${bounding.generatorEventLoopUtilization} of the time (saturated from ${GENERATOR_SATURATION_CORES} cores or ${GENERATOR_SATURATION_UTILIZATION} busy) ` +
      `during the failure that bounded ${SUBJECT}'s ladder, so the ladder measured the generator. ` +
      'The check of server CPU per delivery below still counts. To check the ladder, rerun on a machine with faster cores.')
    return 'inconclusive'
  }
  console.log(`\nRegression check: ${summary}: FAIL`)
  return 'fail'
}

/**
 * Checks fastify-backplane's server CPU per delivery at the fixed rate against the floor's,
 * as the median of the ratios from the same round. It stays valid while the load generator
 * saturates. But at 100 broadcasts per second it measures what merging saves only on machines
 * where that rate keeps the servers busy. On faster ones most passes carry one record, and the
 * ratio is near 1 for a sound build, so it counts only when `counts` is true. Returns like
 * checkLadder(), or undefined when it does not count.
 */
function checkServerCpu (results, { counts }) {
  const ratios = roundByRoundRatios(results, 'floor', (run) => run.serverCpuMicrosecondsPerDelivery)
  if (ratios.length === 0) {
    log('regression check of server CPU skipped: it needs the fastify-backplane and floor fixed-rate runs')
    return undefined
  }
  const ratio = median(ratios)
  const summary = `${SUBJECT} ÷ floor, server CPU per delivery at the fixed rate = ${ratio.toFixed(2)}, ` +
    `median of ${ratios.length} round${ratios.length === 1 ? '' : 's'} (maximum ${MAX_CPU_RATIO_TO_FLOOR})`
  if (!counts) {
    const verdict = ratio <= MAX_CPU_RATIO_TO_FLOOR ? 'pass' : 'above the maximum'
    console.log(`Regression check: ${summary}: ${verdict}, but not counted, because the ladder check decided`)
    return undefined
  }
  if (ratio <= MAX_CPU_RATIO_TO_FLOOR) {
    console.log(`Regression check: ${summary}: pass`)
    return 'pass'
  }
  const runs = [SUBJECT, 'floor'].flatMap((system) => results.systems[system].fixedRate.runs)
  const disturbed = runs.filter((run) => disturbanceCores(run.cpuCores) > DISTURBANCE_CORES)
  if (disturbed.length > 0) {
    console.log(`Regression check: ${summary}: inconclusive, because other processes and steal took more than ${DISTURBANCE_CORES} cores ` +
      `in ${disturbed.length} of the fixed-rate runs. Rerun on a quieter machine.`)
    return 'inconclusive'
  }
  console.log(`Regression check: ${summary}: FAIL`)
  return 'fail'
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    log(`received ${signal}; stopping every process this run started`)
    stopAll().finally(() => process.exit(130))
  })
}

main().then(
  (code) => { process.exitCode = code },
  async (err) => {
    log(`bench failed: ${err.stack ?? err}`)
    await stopAll()
    process.exitCode = 2
  }
)
