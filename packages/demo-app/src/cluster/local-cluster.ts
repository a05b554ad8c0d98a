import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { startRoundRobinFront } from './round-robin-front.js'
import type { RoundRobinFront } from './round-robin-front.js'

/** How long a stopped process may take to exit after SIGTERM before it gets SIGKILL. */
const STOP_TIMEOUT_MS = 15_000
/** How long a new instance may take to respond to GET /healthz with 200. */
const START_TIMEOUT_MS = 30_000
const FIRST_RESTART_DELAY_MS = 1000
const MAX_RESTART_DELAY_MS = 30_000
/** An instance that ran at least this long before exiting restarts after the first delay again. */
const STABLE_RUN_MS = 10_000

export interface LocalClusterOptions {
  /** @default 2 */
  instances?: number
  /** The front's port. @default 0, a free port */
  frontPort?: number
  /**
   * The command that starts one instance, run in the demo-app folder.
   * @default `node dist/server.js`, or `node --import tsx src/server.ts` when this module runs from source
   */
  serverCommand?: readonly string[]
  /** Extra environment variables for the instances, such as LOG_LEVEL. */
  env?: Readonly<Record<string, string>>
  /** Whether an instance that exits on its own starts again, as Heroku restarts a crashed dyno. @default false */
  restartOnExit?: boolean
  /** Receives every output line of the instances and of the front. */
  onOutput?: (source: string, line: string) => void
}

/** One demo instance: a child process that serves the app on a fixed loopback port. */
export interface LocalInstance {
  /** `web.1`, `web.2`, and so on: the DYNO name the instance reports. */
  readonly name: string
  readonly port: number
  readonly url: string
  /** The process id, or undefined while the instance is stopped. */
  readonly pid: number | undefined
  /** Sends SIGTERM, as Heroku does, and resolves once the process exited. */
  stop (): Promise<void>
  /** Starts the process again on the same port and resolves once GET /healthz returns 200. */
  start (): Promise<void>
}

export interface LocalCluster {
  readonly redis: { readonly url: string, readonly port: number, readonly pid: number }
  readonly front: RoundRobinFront
  readonly instances: readonly LocalInstance[]
  /** Stops the front, then the instances, then Redis, and removes Redis's folder. */
  stop (): Promise<void>
}

const packageDirectory = fileURLToPath(new URL('../../', import.meta.url))

/**
 * Starts what a Heroku app with two web dynos has, on loopback. A `redis-server` and the demo
 * instances run on free ports, the instances with `REDIS_URL`, `DYNO` and a shared
 * `BACKPLANE_SECRET`. A round-robin TCP front stands in for Heroku's router. If a step fails,
 * it stops what it already started and rethrows.
 */
export async function startLocalCluster (options: LocalClusterOptions = {}): Promise<LocalCluster> {
  const count = options.instances ?? 2
  if (!Number.isInteger(count) || count < 1) throw new Error(`Invalid instance count ${count}: expected a positive integer.`)
  const output = options.onOutput ?? (() => {})

  const redis = await startRedis(output)
  const instances: ManagedInstance[] = []
  let front: RoundRobinFront | undefined

  const stop = async (): Promise<void> => {
    await front?.close()
    await Promise.all(instances.map(async (instance) => await instance.stop()))
    await redis.stop()
  }

  try {
    const secret = randomBytes(32).toString('hex')
    for (let index = 1; index <= count; index++) {
      instances.push(new ManagedInstance({
        name: `web.${index}`,
        port: await freePort(),
        command: options.serverCommand ?? defaultServerCommand(),
        env: { ...options.env, REDIS_URL: redis.url, BACKPLANE_SECRET: secret },
        restartOnExit: options.restartOnExit ?? false,
        output
      }))
    }
    await Promise.all(instances.map(async (instance) => await instance.start()))

    front = await startRoundRobinFront({
      port: options.frontPort ?? 0,
      backends: () => instances.map((instance) => ({ host: '127.0.0.1', port: instance.port, name: instance.name })),
      onBackendFailed: (backend, err) => output('front', `${backend.name} did not accept a connection (${err.message}); trying the next instance`)
    })
  } catch (err) {
    await stop()
    throw err
  }

  return { redis, front, instances, stop }
}

/** Runs the compiled server, or the TypeScript source through tsx when this module is the source. */
function defaultServerCommand (): string[] {
  if (import.meta.url.endsWith('.ts')) return [process.execPath, '--import', 'tsx', 'src/server.ts']
  return [process.execPath, 'dist/server.js']
}

interface ManagedInstanceSettings {
  name: string
  port: number
  command: readonly string[]
  env: Record<string, string>
  restartOnExit: boolean
  output: (source: string, line: string) => void
}

class ManagedInstance implements LocalInstance {
  readonly name: string
  readonly port: number
  readonly url: string
  readonly #settings: ManagedInstanceSettings
  #child: ChildProcess | undefined
  #stopping = false
  #restartTimer: NodeJS.Timeout | undefined
  #restartDelayMs = FIRST_RESTART_DELAY_MS

  constructor (settings: ManagedInstanceSettings) {
    this.name = settings.name
    this.port = settings.port
    this.url = `http://127.0.0.1:${settings.port}`
    this.#settings = settings
  }

  get pid (): number | undefined {
    return this.#child?.pid
  }

  async start (): Promise<void> {
    clearTimeout(this.#restartTimer)
    if (this.#child !== undefined) return
    this.#stopping = false
    const [executable, ...args] = this.#settings.command
    const child = spawn(executable!, args, {
      cwd: packageDirectory,
      env: { ...process.env, ...this.#settings.env, PORT: String(this.port), HOST: '127.0.0.1', DYNO: this.name },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so a Ctrl-C in the terminal reaches only the cluster command,
      // which then stops each instance once, in order.
      detached: true
    })
    this.#child = child
    const startedAt = Date.now()
    let spawnError: Error | undefined
    child.once('error', (err) => { spawnError = err })
    forwardLines(child, this.name, this.#settings.output)
    child.once('exit', (code, signal) => this.#exited(child, code, signal, Date.now() - startedAt))

    await waitForHealth(this.url, () => {
      if (spawnError !== undefined) return `${this.name} could not be started: ${spawnError.message}`
      if (child.exitCode !== null || child.signalCode !== null) return `${this.name} exited (${child.signalCode ?? `code ${child.exitCode}`}) before it answered ${this.url}/healthz`
      return undefined
    })
  }

  async stop (): Promise<void> {
    this.#stopping = true
    clearTimeout(this.#restartTimer)
    const child = this.#child
    if (child === undefined) return
    await stopProcess(child)
  }

  #exited (child: ChildProcess, code: number | null, signal: NodeJS.Signals | null, ranMs: number): void {
    if (this.#child === child) this.#child = undefined
    if (this.#stopping || !this.#settings.restartOnExit) return

    // The delay doubles while the instance keeps exiting soon after it starts.
    if (ranMs >= STABLE_RUN_MS) this.#restartDelayMs = FIRST_RESTART_DELAY_MS
    const delay = this.#restartDelayMs
    this.#restartDelayMs = Math.min(delay * 2, MAX_RESTART_DELAY_MS)
    this.#settings.output(this.name, `exited (${signal ?? `code ${code}`}); restarting in ${delay / 1000} s`)
    this.#restartTimer = setTimeout(() => {
      this.start().catch((err: unknown) => this.#settings.output(this.name, `restart failed: ${(err as Error).message}`))
    }, delay)
  }
}

interface RedisProcess {
  url: string
  port: number
  pid: number
  stop (): Promise<void>
}

/** Spawns `redis-server` on a free loopback port with persistence off, in a temporary folder. */
async function startRedis (output: (source: string, line: string) => void): Promise<RedisProcess> {
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'notes-board-redis-'))
  const child = spawn('redis-server', [
    '--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir
  ], { stdio: ['ignore', 'pipe', 'pipe'], detached: true })

  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('redis-server did not report "Ready to accept connections" within 10 s')), 10_000)
      const lines = createInterface({ input: child.stdout! })
      lines.on('line', (line) => {
        if (line.includes('Ready to accept connections')) {
          clearTimeout(timer)
          resolve()
        }
      })
      child.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer)
        reject(err.code === 'ENOENT'
          ? new Error('redis-server was not found on PATH. Install Redis 7 (Debian: apt-get install redis-server).')
          : err)
      })
      child.once('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`redis-server exited with code ${code} before it was ready`))
      })
    })
  } catch (err) {
    await stopProcess(child)
    await rm(dir, { recursive: true, force: true })
    throw err
  }

  forwardLines(child, 'redis', output)
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    stop: async () => {
      await stopProcess(child)
      await rm(dir, { recursive: true, force: true })
    }
  }
}

/** Sends SIGTERM and waits for the exit; sends SIGKILL after STOP_TIMEOUT_MS. */
async function stopProcess (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
  await exited
  clearTimeout(timer)
}

/**
 * Polls GET /healthz until it returns 200. Rejects when `failure()` returns a reason, such as
 * the process having exited, or after START_TIMEOUT_MS.
 */
async function waitForHealth (url: string, failure: () => string | undefined): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS
  while (Date.now() < deadline) {
    const reason = failure()
    if (reason !== undefined) throw new Error(reason)
    try {
      const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) })
      if (response.ok) return
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`GET ${url}/healthz did not return 200 within ${START_TIMEOUT_MS / 1000} s`)
}

function forwardLines (child: ChildProcess, source: string, output: (source: string, line: string) => void): void {
  for (const stream of [child.stdout, child.stderr]) {
    if (stream !== null) createInterface({ input: stream }).on('line', (line) => output(source, line))
  }
}

/** Returns a TCP port that was free on 127.0.0.1 a moment ago. */
export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  server.close()
  await once(server, 'close')
  if (address === null || typeof address === 'string') throw new Error('no port assigned')
  return address.port
}
