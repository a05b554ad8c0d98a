// Markdown tables of a run's results, with every figure of fastify-backplane also given as a
// ratio to each reference system from the same run.
import { LATENCY_LIMIT_MS } from './scenarios.js'

export const SUBJECT = 'fastify-backplane'
/** The systems that fastify-backplane's figures are divided by, where a run has them. */
export const REFERENCES = ['socket.io', 'floor', 'coalescing', 'signalr-minimal']

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 })
const decimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 })

function formatValue (value, format) {
  if (value === null || value === undefined || Number.isNaN(value)) return 'n/a'
  return format(value)
}

function ratio (subject, reference) {
  if (typeof subject !== 'number' || typeof reference !== 'number' || reference === 0) return 'n/a'
  return `${(subject / reference).toFixed(2)}×`
}

/** Builds a table whose rows are metrics and whose columns are the systems, then the ratios. */
function table (results, rows, format) {
  const systems = [SUBJECT, ...REFERENCES].filter((system) => results.systems[system] !== undefined)
  const references = REFERENCES.filter((system) => results.systems[system] !== undefined)
  const header = ['', ...systems, ...references.map((system) => `${SUBJECT} ÷ ${system}`)]
  const lines = [`| ${header.join(' | ')} |`, `|${header.map((_, index) => index === 0 ? ' --- ' : ' ---: ').join('|')}|`]
  for (const { label, value, rowFormat = format, ratios = true } of rows) {
    const values = Object.fromEntries(systems.map((system) => [system, value(results.systems[system])]))
    const cells = [
      label,
      ...systems.map((system) => formatValue(values[system], rowFormat)),
      ...references.map((system) => ratios ? ratio(values[SUBJECT], values[system]) : '')
    ]
    lines.push(`| ${cells.join(' | ')} |`)
  }
  return lines.join('\n')
}

function ladderLabel (ladder) {
  const kind = ladder.scenario === 'group'
    ? `group of ${integer.format(ladder.fanout)}, half on each instance`
    : `all, ${integer.format(ladder.fanout)} clients`
  return kind
}

function findLadder (systemResult, scenario, fanout) {
  return systemResult?.ladders?.find((ladder) => ladder.scenario === scenario && ladder.fanout === fanout)
}

/** Returns the ladders run in `results`, as [scenario, fanout] pairs in run order. */
function ladderKeys (results) {
  const keys = []
  for (const systemResult of Object.values(results.systems)) {
    for (const ladder of systemResult.ladders ?? []) {
      if (!keys.some(([scenario, fanout]) => scenario === ladder.scenario && fanout === ladder.fanout)) keys.push([ladder.scenario, ladder.fanout])
    }
  }
  return keys
}

export function formatReport (results) {
  const sections = []
  const keys = ladderKeys(results)

  sections.push(`### Highest delivery rate with p99 <= ${LATENCY_LIMIT_MS} ms and no loss\n\n` +
    'Deliveries per second (broadcasts per second × clients reached); higher is better.\n\n' +
    table(results, keys.map(([scenario, fanout]) => ({
      label: ladderLabel({ scenario, fanout }),
      value: (system) => {
        const ladder = findLadder(system, scenario, fanout)
        if (ladder === undefined) return undefined
        if (ladder.maxDeliveriesPerSecond > 0) return ladder.maxDeliveriesPerSecond
        // No rate passed: show the bound and the best p99 at the lowest rate as text, which also
        // keeps the row out of the ratios.
        const lowest = ladder.steps.filter((step) => step.deliveriesPerSecond === ladder.lowestRateTried)
        const bestP99 = Math.min(...lowest.map((step) => step.latencyMs.p99 ?? Infinity))
        return `< ${integer.format(ladder.lowestRateTried)} (p99 ${decimal.format(bestP99)} ms at ${integer.format(ladder.lowestRateTried)}/s)`
      }
    })), (value) => typeof value === 'number' ? integer.format(value) : value) + failedBelowNote(results, keys))

  sections.push('### CPU at the failing rate that bounds each ladder\n\n' +
    'CPU in cores over the step, for the load generator, server A, server B, redis-server, ' +
    'processes outside the benchmark, and the time the hypervisor gave to other virtual machines ' +
    '(steal). A generator near 1 core means the step measured the generator as much as the ' +
    `server; other processes and steal above ${results.settings?.disturbanceCores ?? 0.2} cores ` +
    'together mean the step was disturbed.\n\n' +
    table(results, keys.flatMap(([scenario, fanout]) => [
      {
        label: `${ladderLabel({ scenario, fanout })}: rate`,
        value: (system) => findLadder(system, scenario, fanout)?.atFirstFailure?.deliveriesPerSecond,
        rowFormat: (value) => integer.format(value),
        ratios: false
      },
      {
        label: `${ladderLabel({ scenario, fanout })}: generator / A / B / redis / other / steal`,
        value: (system) => {
          const cores = findLadder(system, scenario, fanout)?.atFirstFailure?.cpuCores
          return cores === undefined ? undefined : `${cores.generator} / ${cores.serverA} / ${cores.serverB} / ${cores.redis} / ${cores.otherProcesses} / ${cores.stolen ?? 'n/a'}`
        },
        rowFormat: (value) => value,
        ratios: false
      }
    ]), (value) => value))

  if (Object.values(results.systems).some((system) => system.fixedRate !== undefined)) {
    const fixed = Object.values(results.systems).find((system) => system.fixedRate !== undefined).fixedRate
    const latency = (field) => (system) => system.fixedRate?.latencyMs?.[field]
    const rounds = Math.max(...Object.values(results.systems).map((system) => system.fixedRate?.runs?.length ?? 1))
    const median = rounds > 1 ? `, ${rounds} rounds with the systems taking turns, the run with the median p99` : ''
    sections.push(`### Latency at a fixed ${integer.format(fixed.deliveriesPerSecond)} deliveries/s ` +
      `(${integer.format(fixed.fanout)} clients, ${fixed.durationMs / 1000} s${median})\n\n` +
      'Milliseconds from server A\'s send to the client\'s receipt; lower is better.\n\n' +
      table(results, [
        { label: 'p50 (ms)', value: latency('p50') },
        { label: 'p99 (ms)', value: latency('p99') },
        { label: 'max (ms)', value: latency('max') },
        { label: 'p50, clients of server A, the sender (ms)', value: (system) => system.fixedRate?.latencyMsByServer?.[0]?.p50 },
        { label: 'p50, clients of server B (ms)', value: (system) => system.fixedRate?.latencyMsByServer?.[1]?.p50 },
        { label: 'p99, clients of server A, the sender (ms)', value: (system) => system.fixedRate?.latencyMsByServer?.[0]?.p99 },
        { label: 'p99, clients of server B (ms)', value: (system) => system.fixedRate?.latencyMsByServer?.[1]?.p99 },
        { label: 'p99 of every round (ms)', value: (system) => system.fixedRate?.runs?.map((run) => decimal.format(run.latencyMs.p99)).join(', '), rowFormat: (value) => value, ratios: false },
        { label: 'deliveries lost', value: (system) => system.fixedRate?.lost, rowFormat: (value) => integer.format(value), ratios: false },
        { label: 'generator CPU (cores)', value: (system) => system.fixedRate?.cpuCores?.generator, ratios: false },
        { label: 'other processes\' CPU (cores)', value: (system) => system.fixedRate?.cpuCores?.otherProcesses, ratios: false },
        { label: 'CPU stolen by the hypervisor (cores)', value: (system) => system.fixedRate?.cpuCores?.stolen, ratios: false },
        { label: 'server A + B CPU (cores)', value: (system) => system.fixedRate === undefined ? undefined : system.fixedRate.cpuCores.serverA + system.fixedRate.cpuCores.serverB },
        { label: 'server CPU per delivery (µs)', value: (system) => system.fixedRate?.serverCpuMicrosecondsPerDelivery }
      ], (value) => decimal.format(value)) + roundRatios(results))
  }

  if (Object.values(results.systems).some((system) => system.idleMemory !== undefined)) {
    const connections = Object.values(results.systems).find((system) => system.idleMemory !== undefined).idleMemory.connections
    sections.push(`### Memory per idle connection (${integer.format(connections)} connections over two instances)\n\n` +
      'Growth of both servers\' memory after full garbage collections, divided by the connections; lower is better.\n\n' +
      table(results, [
        { label: 'RSS (KiB)', value: (system) => system.idleMemory?.rssKiBPerConnection },
        { label: 'V8 heap used (KiB)', value: (system) => system.idleMemory?.heapUsedKiBPerConnection }
      ], (value) => decimal.format(value)))
  }

  const loads = Object.entries(results.systems).map(([system, result]) =>
    `${system} ${result.loadAverage?.before?.[0] ?? '?'} → ${result.loadAverage?.after?.[0] ?? '?'}`)
  sections.push(`Load average (1 min) before → after each system: ${loads.join('; ')}. ` +
    'These include the benchmark\'s own processes, so they show how busy the machine was, not what else ran on it.')
  return sections.join('\n\n')
}

/**
 * Returns the rates below a ladder's result at which every try failed, in ascending order. At
 * 5,000 clients the p99 can fall as the rate rises, so a ladder can pass a rate above ones it
 * failed.
 */
export function failedRatesBelowResult (ladder) {
  const passedRates = new Set(ladder.steps.filter((step) => step.passed).map((step) => step.deliveriesPerSecond))
  const failedRates = new Set(ladder.steps
    .filter((step) => !step.passed && step.deliveriesPerSecond < ladder.maxDeliveriesPerSecond && !passedRates.has(step.deliveriesPerSecond))
    .map((step) => step.deliveriesPerSecond))
  return [...failedRates].sort((a, b) => a - b)
}

/** Returns a note that lists, per system and ladder, the failed rates below the table's result. */
function failedBelowNote (results, keys) {
  const lines = []
  for (const [system, systemResult] of Object.entries(results.systems)) {
    for (const [scenario, fanout] of keys) {
      const ladder = findLadder(systemResult, scenario, fanout)
      if (ladder === undefined || !(ladder.maxDeliveriesPerSecond > 0)) continue
      const failed = failedRatesBelowResult(ladder)
      if (failed.length === 0) continue
      lines.push(`- ${system}, ${ladderLabel({ scenario, fanout })}: ${integer.format(ladder.maxDeliveriesPerSecond)}/s passed, but ${failed.map((rate) => `${integer.format(rate)}/s`).join(', ')} failed`)
    }
  }
  if (lines.length === 0) return ''
  return '\n\nResults above rates that failed on every try:\n\n' + lines.join('\n')
}

/** Returns the median of `values`, which must not be empty. */
export function median (values) {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/**
 * Returns `value(run)` of each of fastify-backplane's fixed-rate runs divided by the same of
 * `reference`'s run from the same round, for every round in which both ran. A ratio within a
 * round is less exposed to the machine's drift over the run than a ratio of medians.
 */
export function roundByRoundRatios (results, reference, value) {
  const referenceRuns = results.systems[reference]?.fixedRate?.runs ?? []
  return (results.systems[SUBJECT]?.fixedRate?.runs ?? []).flatMap((run) => {
    const other = referenceRuns.find((candidate) => candidate.round === run.round)
    const subjectValue = value(run)
    const referenceValue = other === undefined ? undefined : value(other)
    return typeof subjectValue === 'number' && referenceValue > 0 ? [subjectValue / referenceValue] : []
  })
}

/**
 * Returns fastify-backplane's p99 at the fixed rate divided by each reference's, round by
 * round, as a paragraph, or '' with fewer than two rounds.
 */
function roundRatios (results) {
  if ((results.systems[SUBJECT]?.fixedRate?.runs?.length ?? 0) < 2) return ''
  const lines = []
  for (const reference of REFERENCES) {
    const ratios = roundByRoundRatios(results, reference, (run) => run.latencyMs.p99)
    if (ratios.length === 0) continue
    lines.push(`- ÷ ${reference}: ${ratios.map((value) => `${value.toFixed(2)}×`).join(', ')} (median ${median(ratios).toFixed(2)}×)`)
  }
  if (lines.length === 0) return ''
  return `\n\n${SUBJECT}'s p99 divided by each reference's from the same round, round by round:\n\n${lines.join('\n')}`
}

/** Returns fastify-backplane's ladder result divided by the floor's, or undefined. */
export function ratioToFloor (results, scenario, fanout) {
  const subject = findLadder(results.systems[SUBJECT], scenario, fanout)?.maxDeliveriesPerSecond
  const floor = findLadder(results.systems.floor, scenario, fanout)?.maxDeliveriesPerSecond
  if (subject === undefined || floor === undefined || floor === 0) return undefined
  return subject / floor
}
