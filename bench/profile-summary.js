// Summarises a V8 CPU profile (`node --cpu-prof`): the functions with the most self time, self
// time by package, and the total time of fastify-backplane's functions with their callees.
// Percentages are of the busy time, which excludes the (idle) node.
//
//   node bench/profile-summary.js bench/results/profiles/<run>/server-A.cpuprofile
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { fileURLToPath } from 'node:url'

const TOP_FUNCTIONS = 25
const TOP_LIBRARY_FUNCTIONS = 12

/** Names the package or part of the runtime that a script URL belongs to. */
function categorise (url, functionName) {
  if (url === '') return functionName.startsWith('(') ? functionName : 'V8 builtins and native code'
  if (url.startsWith('node:')) return 'Node.js core'
  if (url.includes('/packages/fastify-backplane/')) return 'fastify-backplane'
  const match = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)\//.exec(url)
  if (match !== null) return match[1]
  if (url.includes('/bench/')) return 'benchmark harness'
  return 'other'
}

function location (url, lineNumber) {
  if (url === '') return ''
  const path = url.replace(/^file:\/\//, '')
  const packageRelative = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?(.+)$/.exec(path)?.[1] ??
    /packages\/(.+)$/.exec(path)?.[1] ??
    (url.startsWith('node:') ? url : basename(path))
  return `${packageRelative}:${lineNumber + 1}`
}

export function summariseProfile (profile) {
  const nodesById = new Map(profile.nodes.map((node) => [node.id, node]))
  const sampleCount = profile.samples.length
  const totalMs = (profile.endTime - profile.startTime) / 1000
  const msPerSample = sampleCount === 0 ? 0 : totalMs / sampleCount

  const selfByFunction = new Map()
  const selfByCategory = new Map()
  let idleSamples = 0
  for (const id of profile.samples) {
    const { callFrame } = nodesById.get(id)
    if (callFrame.functionName === '(idle)') {
      idleSamples++
      continue
    }
    const name = callFrame.functionName === '' ? '(anonymous)' : callFrame.functionName
    const key = `${name}\u0000${callFrame.url}\u0000${callFrame.lineNumber}`
    const entry = selfByFunction.get(key) ?? { function: name, location: location(callFrame.url, callFrame.lineNumber), category: categorise(callFrame.url, callFrame.functionName), samples: 0 }
    entry.samples++
    selfByFunction.set(key, entry)
    selfByCategory.set(entry.category, (selfByCategory.get(entry.category) ?? 0) + 1)
  }

  // Inclusive ("total") time of fastify-backplane's functions: samples with the function
  // anywhere on the stack, each counted once per sample even under recursion.
  const parents = new Map()
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parents.set(child, node.id)
  }
  const totalByFunction = new Map()
  for (const id of profile.samples) {
    const seen = new Set()
    for (let nodeId = id; nodeId !== undefined; nodeId = parents.get(nodeId)) {
      const { callFrame } = nodesById.get(nodeId)
      if (categorise(callFrame.url, callFrame.functionName) !== 'fastify-backplane') continue
      const key = `${callFrame.functionName}\u0000${callFrame.url}\u0000${callFrame.lineNumber}`
      if (seen.has(key)) continue
      seen.add(key)
      const entry = totalByFunction.get(key) ?? { function: callFrame.functionName || '(anonymous)', location: location(callFrame.url, callFrame.lineNumber), samples: 0 }
      entry.samples++
      totalByFunction.set(key, entry)
    }
  }

  const busySamples = sampleCount - idleSamples
  const percent = (samples) => Math.round((samples / Math.max(1, busySamples)) * 1000) / 10
  return {
    totalMs: Math.round(totalMs),
    busyMs: Math.round(busySamples * msPerSample),
    idlePercent: Math.round((idleSamples / Math.max(1, sampleCount)) * 1000) / 10,
    topSelf: [...selfByFunction.values()]
      .sort((a, b) => b.samples - a.samples)
      .slice(0, TOP_FUNCTIONS)
      .map(({ samples, ...entry }) => ({ ...entry, selfPercent: percent(samples), selfMs: Math.round(samples * msPerSample) })),
    byCategory: [...selfByCategory.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([category, samples]) => ({ category, selfPercent: percent(samples) }))
      .filter((entry) => entry.selfPercent >= 0.1),
    libraryTotal: [...totalByFunction.values()]
      .sort((a, b) => b.samples - a.samples)
      .slice(0, TOP_LIBRARY_FUNCTIONS)
      .map(({ samples, ...entry }) => ({ ...entry, totalPercent: percent(samples) }))
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const files = process.argv.slice(2)
  if (files.length === 0) {
    console.error('usage: node bench/profile-summary.js FILE.cpuprofile...')
    process.exit(1)
  }
  for (const file of files) {
    const summary = summariseProfile(JSON.parse(readFileSync(file, 'utf8')))
    console.log(`${file}: ${summary.totalMs} ms sampled, ${summary.busyMs} ms busy, ${summary.idlePercent} % idle`)
    console.log('Self time by package (% of busy):')
    for (const { category, selfPercent } of summary.byCategory) console.log(`  ${selfPercent.toFixed(1).padStart(5)} %  ${category}`)
    console.log('Functions with the most self time (% of busy):')
    for (const entry of summary.topSelf) console.log(`  ${entry.selfPercent.toFixed(1).padStart(5)} %  ${entry.function}  ${entry.location}  [${entry.category}]`)
    console.log('fastify-backplane functions by total time, callees included (% of busy):')
    for (const entry of summary.libraryTotal) console.log(`  ${entry.totalPercent.toFixed(1).padStart(5)} %  ${entry.function}  ${entry.location}`)
    console.log()
  }
}
