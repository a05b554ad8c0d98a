// Starting and stopping the processes of a run: one redis-server, two server processes per
// system under test, and the load generator. Every process started here is recorded, so that
// the runner can stop each one by its pid on any exit path.
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { delay, spawnNodeChild } from './rpc.js'

const benchDirectory = fileURLToPath(new URL('..', import.meta.url))

export const SYSTEMS = ['fastify-backplane', 'socket.io', 'floor', 'coalescing', 'signalr-minimal']
/** The systems of a run without `--systems`: the minimal SignalR server only runs when named. */
export const DEFAULT_SYSTEMS = SYSTEMS.filter((system) => system !== 'signalr-minimal')

const serverScripts = {
  'fastify-backplane': 'servers/fastify-backplane.js',
  'socket.io': 'servers/socketio.js',
  floor: 'servers/floor.js',
  coalescing: 'servers/coalescing.js',
  'signalr-minimal': 'servers/signalr-minimal.js'
}

/** Every child that is still running, so that `stopAll()` can reach it. */
const running = new Set()

async function freeLoopbackPort () {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  server.close()
  await once(server, 'close')
  return port
}

/** Starts a redis-server that keeps nothing on disk, on a free loopback port. */
export async function startRedis () {
  const port = await freeLoopbackPort()
  const child = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const stop = async () => {
    running.delete(stop)
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    await Promise.race([once(child, 'exit'), delay(5000)])
  }
  running.add(stop)

  let output = ''
  const ready = (async () => {
    for await (const chunk of child.stdout) {
      output += chunk
      if (output.includes('Ready to accept connections')) return
    }
    throw new Error(`redis-server exited before it was ready:\n${output}`)
  })()
  await Promise.race([ready, delay(10_000).then(() => { throw new Error(`redis-server was not ready within 10 s:\n${output}`) })])
  child.stdout.resume()
  const version = /v=(\S+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8' }))?.[1]
  return { url: `redis://127.0.0.1:${port}`, port, pid: child.pid, version, stop }
}

/** Starts server processes A and B of `system`, both on `redisUrl`. */
export async function startServers (system, redisUrl, { nodeOptions = () => [] } = {}) {
  const script = new URL(serverScripts[system], `file://${benchDirectory}`).pathname
  const servers = []
  try {
    for (const [instance, label] of ['A', 'B'].entries()) {
      const child = spawnNodeChild(`${system} server ${label}`, script, { nodeOptions: ['--expose-gc', ...nodeOptions(label)] })
      const stop = () => child.stop()
      running.add(stop)
      child.exited.then(() => running.delete(stop))
      servers.push(child)
      const { port } = await child.request('start', { redisUrl, instance }, 30_000)
      child.port = port
      child.label = label
    }
  } catch (err) {
    await Promise.all(servers.map((server) => server.stop()))
    throw err
  }
  return servers
}

export function startLoadGenerator () {
  const child = spawnNodeChild('load generator', new URL('loadgen.js', `file://${benchDirectory}`).pathname)
  const stop = () => child.stop()
  running.add(stop)
  child.exited.then(() => running.delete(stop))
  return child
}

/** Stops every process this module started that is still running. */
export async function stopAll () {
  await Promise.all([...running].map((stop) => stop().catch(() => {})))
}

let clockTicksPerSecond

/**
 * Reads, in seconds since boot, the CPU time that all processes of the machine used (`busy`)
 * and the time the hypervisor gave the machine's virtual CPUs to other guests (`stolen`).
 */
export function machineCpuSeconds () {
  clockTicksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }))
  // The first line of /proc/stat: user nice system idle iowait irq softirq steal ...
  const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number)
  const busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6]
  return { busy: busy / clockTicksPerSecond, stolen: (fields[7] ?? 0) / clockTicksPerSecond }
}

/** Reads a process's CPU time (user plus system) in seconds from /proc, or undefined. */
export function processCpuSeconds (pid) {
  clockTicksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }))
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // utime and stime are fields 14 and 15 of proc(5); the split starts at field 3, the state.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond
  } catch {
    return undefined
  }
}
