// Measures broadcast fan-out across two instances that share one Redis: throughput and
// delivery latency at the clients, and the memory the instances hold. Everything runs on
// loopback with its own redis-server; every loop is bounded.
//
//   pnpm bench                         defaults below
//   BENCH_CLIENTS=400 BENCH_MESSAGES=5000 BENCH_RATE=500 pnpm bench
//
// Two scenarios run: a burst, for throughput, and a paced send, for latency at a steady rate.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { cpus, totalmem } from 'node:os'
import { performance } from 'node:perf_hooks'
import Fastify from 'fastify'
import WebSocket from 'ws'
import { backplane, hub } from '../packages/fastify-backplane/dist/index.js'

const clientCount = Number(process.env.BENCH_CLIENTS ?? 200)
const messageCount = Number(process.env.BENCH_MESSAGES ?? 2000)
const payloadBytes = Number(process.env.BENCH_PAYLOAD ?? 100)
const pacedRate = Number(process.env.BENCH_RATE ?? 200)
const RS = '\u001e'

async function freePort () {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  server.close()
  await once(server, 'close')
  return port
}

async function startRedis () {
  const port = await freePort()
  const child = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let output = ''
  for await (const chunk of child.stdout) {
    output += chunk
    if (output.includes('Ready to accept connections')) break
  }
  return { url: `redis://127.0.0.1:${port}`, stop: () => child.kill('SIGTERM') }
}

async function startInstance (redisUrl) {
  const app = Fastify({ logger: false })
  await app.register(backplane, { redis: redisUrl })
  await app.register(hub, { path: '/bench' })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return app
}

/** Opens a raw WebSocket client, completes the JSON handshake, and records arrival times. */
async function connect (app, onInvocation) {
  const socket = new WebSocket(`ws://127.0.0.1:${app.server.address().port}/bench`)
  await once(socket, 'open')
  socket.send(JSON.stringify({ protocol: 'json', version: 1 }) + RS)
  await once(socket, 'message')
  socket.on('message', (data) => {
    const now = performance.now()
    for (const record of data.toString().split(RS)) {
      if (record.startsWith('{"type":1')) onInvocation(JSON.parse(record), now)
    }
  })
  return socket
}

function percentile (sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

/**
 * Sends `messageCount` broadcasts from instance A, as fast as possible when `rate` is 0 or at
 * `rate` per second otherwise, and waits until every client received every one.
 */
async function runScenario (a, sockets, state, rate) {
  state.latencies = []
  state.received = 0
  const expected = sockets.length * messageCount
  const done = new Promise((resolve) => { state.onReceived = () => { if (++state.received === expected) resolve() } })

  const filler = 'x'.repeat(payloadBytes)
  const heapBefore = process.memoryUsage().heapUsed
  const started = performance.now()
  for (let index = 0; index < messageCount; index++) {
    void a.broadcast('tick', [performance.now(), filler])
    if (rate > 0) {
      const due = started + ((index + 1) * 1000) / rate
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - performance.now())))
    } else if (index % 100 === 99) {
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
  let timer
  await Promise.race([done, new Promise((resolve) => { timer = setTimeout(resolve, 120_000) })])
  clearTimeout(timer)
  const elapsed = (performance.now() - started) / 1000
  const latencies = state.latencies.sort((x, y) => x - y)
  return {
    mode: rate > 0 ? `paced at ${rate} broadcasts/s` : 'burst',
    delivered: `${state.received} of ${expected}`,
    seconds: Number(elapsed.toFixed(2)),
    deliveriesPerSecond: Math.round(state.received / elapsed),
    broadcastsPerSecond: Math.round(messageCount / elapsed),
    latencyMs: {
      p50: Number(percentile(latencies, 0.5).toFixed(2)),
      p99: Number(percentile(latencies, 0.99).toFixed(2)),
      max: Number(latencies.at(-1).toFixed(2))
    },
    heapGrowthMiB: Number(((process.memoryUsage().heapUsed - heapBefore) / 2 ** 20).toFixed(1)),
    rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20)
  }
}

const redis = await startRedis()
const [a, b] = [await startInstance(redis.url), await startInstance(redis.url)]
const state = { latencies: [], received: 0, onReceived: () => {} }
const sockets = []
for (let index = 0; index < clientCount; index++) {
  sockets.push(await connect(index % 2 === 0 ? a : b, (message, now) => {
    state.latencies.push(now - message.arguments[0])
    state.onReceived()
  }))
}

const report = {
  machine: `${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
  setup: `2 instances on one local redis-server, ${clientCount} raw WebSocket clients split evenly, ${messageCount} broadcasts of ~${payloadBytes} B from instance A; servers, clients and redis-server share the machine`,
  scenarios: [
    await runScenario(a, sockets, state, 0),
    await runScenario(a, sockets, state, pacedRate)
  ]
}
console.log(JSON.stringify(report, null, 2))

for (const socket of sockets) socket.terminate()
await Promise.all([a.close(), b.close()])
redis.stop()
