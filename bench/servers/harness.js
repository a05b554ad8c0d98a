// The part of every server entry that is the same for all systems under test: the runner's
// requests, the paced publisher, and CPU and memory readings.
//
// A server entry passes `runServer()` a function that starts its system and returns:
//   { port, broadcast(payload), broadcastToGroup(group, payload), close() }
// where `payload` is the 64-byte string from payload.js.
import { encodePayload, nowMicroseconds } from '../lib/payload.js'
import { serveRequests } from '../lib/rpc.js'

/** How long the publisher may run past its nominal duration before it gives up, in ms. */
const PUBLISH_OVERRUN_MS = 5000

export function runServer (startSystem) {
  let system

  serveRequests({
    async start ({ redisUrl, instance }) {
      system = await startSystem({ redisUrl, instance })
      return { port: system.port, pid: process.pid }
    },

    publish: (params) => publishPaced(system, params),

    sample () {
      return { cpu: process.cpuUsage(), memory: process.memoryUsage() }
    },

    /** Runs full garbage collections first, so that RSS readings compare like with like. */
    async memory () {
      for (let round = 0; round < 3; round++) {
        globalThis.gc?.()
        await new Promise((resolve) => setImmediate(resolve))
      }
      return { gcExposed: typeof globalThis.gc === 'function', memory: process.memoryUsage() }
    },

    async stop () {
      // Exit from a timer so that the reply reaches the runner first. process.exit() also
      // makes `node --cpu-prof` write its profile.
      const exit = () => setTimeout(() => process.exit(0), 50)
      try {
        await Promise.race([system?.close(), new Promise((resolve) => setTimeout(resolve, 5000))])
      } finally {
        exit()
      }
    }
  })
}

/**
 * Broadcasts `rate` payloads per second for `durationMs`. Each timer tick sends every payload
 * that is due by then, so a busy event loop sends larger bursts instead of falling behind
 * silently. The result reports when the last payload went out, and the runner fails a step
 * whose publisher lagged. Stops PUBLISH_OVERRUN_MS past the nominal end even if payloads remain.
 */
async function publishPaced (system, { step, rate, durationMs, group }) {
  const total = Math.max(1, Math.round((rate * durationMs) / 1000))
  const send = group === undefined
    ? (payload) => system.broadcast(payload)
    : (payload) => system.broadcastToGroup(group, payload)
  const cpuBefore = process.cpuUsage()
  const started = performance.now()
  let sent = 0
  let largestBurst = 0

  while (sent < total) {
    const elapsed = performance.now() - started
    if (elapsed > durationMs + PUBLISH_OVERRUN_MS) break
    const due = Math.min(total, Math.floor((elapsed * rate) / 1000) + 1)
    largestBurst = Math.max(largestBurst, due - sent)
    for (; sent < due; sent++) send(encodePayload(step, sent, nowMicroseconds()))
    if (sent < total) await new Promise((resolve) => setTimeout(resolve, 1))
  }

  const seconds = (performance.now() - started) / 1000
  return { sent, total, seconds, largestBurst, cpu: process.cpuUsage(cpuBefore) }
}
