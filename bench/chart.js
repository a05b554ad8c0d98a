// Draws p99 latency against offered delivery rate for every system, one panel per ladder, as
// an SVG file, from a run's JSON. With --tables it also prints the run's Markdown tables.
//
//   node bench/chart.js [bench/results/full.json] [bench/results/p99-vs-rate.svg] [--tables]
import { readFileSync, writeFileSync } from 'node:fs'
import { formatReport, REFERENCES, SUBJECT } from './lib/report.js'

const COLORS = { [SUBJECT]: '#1f77b4', 'socket.io': '#ff7f0e', floor: '#2ca02c', coalescing: '#9467bd', 'signalr-minimal': '#8c564b' }
const PANEL = { width: 460, height: 300, left: 64, right: 16, top: 34, bottom: 46 }
const LEGEND_HEIGHT = 76
const LEGEND_SPACING = 170
const MINIMUM_WIDTH = 4 * LEGEND_SPACING + 48

const escapeXml = (text) => String(text).replace(/[<>&"]/g, (character) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[character])

function formatRate (value) {
  if (value >= 1e6) return `${value / 1e6}M`
  if (value >= 1e3) return `${value / 1e3}k`
  return String(value)
}

/** Returns the 1-2-5 ticks of a log scale between `low` and `high`. */
function logTicks (low, high) {
  const ticks = []
  for (let power = Math.floor(Math.log10(low)); power <= Math.ceil(Math.log10(high)); power++) {
    for (const mantissa of [1, 2, 5]) {
      const value = mantissa * 10 ** power
      if (value >= low && value <= high) ticks.push(value)
    }
  }
  return ticks
}

/** Returns one point per offered rate: the last attempt at that rate, retries included. */
function seriesOf (ladder) {
  const byRate = new Map()
  for (const step of ladder.steps) {
    if (step.latencyMs.samples > 0) byRate.set(step.deliveriesPerSecond, step)
  }
  return [...byRate.values()].sort((a, b) => a.deliveriesPerSecond - b.deliveriesPerSecond)
}

function drawPanel (results, scenario, fanout, latencyLimitMs, originX, originY) {
  const ladders = Object.entries(results.systems)
    .map(([system, result]) => [system, result.ladders?.find((ladder) => ladder.scenario === scenario && ladder.fanout === fanout)])
    .filter(([, ladder]) => ladder !== undefined)
  const steps = ladders.flatMap(([, ladder]) => seriesOf(ladder))
  const rates = steps.map((step) => step.deliveriesPerSecond)
  const latencies = steps.map((step) => step.latencyMs.p99)
  const xLow = Math.min(...rates) / 1.3
  const xHigh = Math.max(...rates) * 1.3
  const yLow = 10 ** Math.floor(Math.log10(Math.min(latencyLimitMs / 2, ...latencies)))
  const yHigh = 10 ** Math.ceil(Math.log10(Math.max(latencyLimitMs * 2, ...latencies)))

  const plotWidth = PANEL.width - PANEL.left - PANEL.right
  const plotHeight = PANEL.height - PANEL.top - PANEL.bottom
  const x = (value) => originX + PANEL.left + ((Math.log10(value) - Math.log10(xLow)) / (Math.log10(xHigh) - Math.log10(xLow))) * plotWidth
  const y = (value) => originY + PANEL.top + plotHeight - ((Math.log10(value) - Math.log10(yLow)) / (Math.log10(yHigh) - Math.log10(yLow))) * plotHeight

  const title = scenario === 'group'
    ? `Group broadcast, ${fanout.toLocaleString('en-US')} members, half on each instance`
    : `Broadcast to all, ${fanout.toLocaleString('en-US')} clients over two instances`
  const parts = [`<text x="${originX + PANEL.left}" y="${originY + 20}" font-weight="bold">${escapeXml(title)}</text>`]
  parts.push(`<rect x="${originX + PANEL.left}" y="${originY + PANEL.top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#999"/>`)
  for (const tick of logTicks(xLow, xHigh)) {
    parts.push(`<line x1="${x(tick)}" x2="${x(tick)}" y1="${originY + PANEL.top}" y2="${originY + PANEL.top + plotHeight}" stroke="#eee"/>`)
    parts.push(`<text x="${x(tick)}" y="${originY + PANEL.top + plotHeight + 16}" text-anchor="middle">${formatRate(tick)}</text>`)
  }
  for (const tick of logTicks(yLow, yHigh)) {
    parts.push(`<line x1="${originX + PANEL.left}" x2="${originX + PANEL.left + plotWidth}" y1="${y(tick)}" y2="${y(tick)}" stroke="#eee"/>`)
    parts.push(`<text x="${originX + PANEL.left - 6}" y="${y(tick) + 4}" text-anchor="end">${tick}</text>`)
  }
  parts.push(`<line x1="${originX + PANEL.left}" x2="${originX + PANEL.left + plotWidth}" y1="${y(latencyLimitMs)}" y2="${y(latencyLimitMs)}" stroke="#d62728" stroke-dasharray="6 4"/>`)
  parts.push(`<text x="${originX + PANEL.left + 4}" y="${y(latencyLimitMs) - 4}" fill="#d62728">p99 limit ${latencyLimitMs} ms</text>`)
  parts.push(`<text x="${originX + PANEL.left + plotWidth / 2}" y="${originY + PANEL.height - 8}" text-anchor="middle">offered deliveries per second (log)</text>`)
  parts.push(`<text transform="translate(${originX + 16} ${originY + PANEL.top + plotHeight / 2}) rotate(-90)" text-anchor="middle">p99 latency, ms (log)</text>`)

  for (const [system, ladder] of ladders) {
    const points = seriesOf(ladder)
    const color = COLORS[system] ?? '#333'
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${points.map((step) => `${x(step.deliveriesPerSecond).toFixed(1)},${y(step.latencyMs.p99).toFixed(1)}`).join(' ')}"/>`)
    for (const step of points) {
      // Filled markers passed the step; hollow ones failed it (latency, loss or publisher lag).
      parts.push(`<circle cx="${x(step.deliveriesPerSecond).toFixed(1)}" cy="${y(step.latencyMs.p99).toFixed(1)}" r="4" stroke="${color}" stroke-width="2" fill="${step.passed ? color : 'white'}"><title>${escapeXml(`${system}: ${step.deliveriesPerSecond} deliveries/s, p99 ${step.latencyMs.p99} ms, ${step.passed ? 'passed' : step.failures.join('; ')}`)}</title></circle>`)
    }
  }
  return parts.join('\n')
}

export function renderChart (results) {
  const keys = []
  for (const result of Object.values(results.systems)) {
    for (const ladder of result.ladders ?? []) {
      if (!keys.some(([scenario, fanout]) => scenario === ladder.scenario && fanout === ladder.fanout)) keys.push([ladder.scenario, ladder.fanout])
    }
  }
  if (keys.length === 0) throw new Error('the results contain no ladder to chart')
  const columns = Math.min(2, keys.length)
  const rows = Math.ceil(keys.length / columns)
  const width = Math.max(columns * PANEL.width, MINIMUM_WIDTH)
  const height = rows * PANEL.height + LEGEND_HEIGHT
  const latencyLimitMs = results.settings?.latencyLimitMs ?? 50

  const panels = keys.map(([scenario, fanout], index) =>
    drawPanel(results, scenario, fanout, latencyLimitMs, (index % columns) * PANEL.width, Math.floor(index / columns) * PANEL.height))
  const legend = [SUBJECT, ...REFERENCES].filter((system) => results.systems[system] !== undefined).map((system, index) => {
    const legendX = 24 + index * LEGEND_SPACING
    const legendY = rows * PANEL.height + 20
    return `<line x1="${legendX}" x2="${legendX + 24}" y1="${legendY}" y2="${legendY}" stroke="${COLORS[system]}" stroke-width="3"/>` +
      `<text x="${legendX + 30}" y="${legendY + 4}">${escapeXml(system)}</text>`
  })
  const note = `<text x="24" y="${rows * PANEL.height + 44}" fill="#555">Filled marker: step passed (p99 ≤ ${latencyLimitMs} ms, nothing lost). Hollow: step failed.</text>\n` +
    `<text x="24" y="${rows * PANEL.height + 62}" fill="#555">${escapeXml(results.machine?.nproc ?? '?')} × ${escapeXml(results.machine?.cpuModel ?? '?')}${results.machine?.cpu?.mhz ? ` at ${(results.machine.cpu.mhz / 1000).toFixed(1)} GHz` : ''}, ` +
    `Node ${escapeXml(results.machine?.node ?? '?')}, run started ${escapeXml(results.startedAt ?? '?')}</text>`

  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
${panels.join('\n')}
${legend.join('\n')}
${note}
</svg>
`
}

const positional = process.argv.slice(2).filter((argument) => !argument.startsWith('--'))
const [input = 'bench/results/full.json', output = 'bench/results/p99-vs-rate.svg'] = positional
const results = JSON.parse(readFileSync(input, 'utf8'))
writeFileSync(output, renderChart(results))
console.error(`wrote ${output} from ${input}`)
if (process.argv.includes('--tables')) console.log(formatReport(results))
