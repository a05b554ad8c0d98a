import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A `redis-server` that a test starts on a free loopback port and stops afterwards. */
export interface RedisServer {
  readonly port: number
  readonly url: string
  /** Stops the server and removes its folder; `restart()` can still start it again on the same port. */
  stop (): Promise<void>
  /** Starts the server again on the same port, empty. */
  restart (): Promise<void>
  /** Freezes the process with SIGSTOP, so connections hang without closing. */
  pause (): void
  /** Thaws a paused server with SIGCONT. */
  resume (): void
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

/**
 * Spawns `redis-server` on 127.0.0.1 with persistence off and extra arguments such as
 * `['--requirepass', 'secret']`. Resolves once the server accepts connections.
 */
export async function startRedisServer (extraArgs: string[] = []): Promise<RedisServer> {
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'backplane-redis-'))
  let child: ChildProcess | undefined

  const start = async (): Promise<void> => {
    await mkdir(dir, { recursive: true })
    child = spawn('redis-server', [
      '--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no',
      '--dir', dir, ...extraArgs
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    await waitForReady(child)
  }

  const stop = async (): Promise<void> => {
    const running = child
    child = undefined
    if (running === undefined || running.exitCode !== null) return
    running.kill('SIGCONT')
    running.kill('SIGTERM')
    await once(running, 'exit')
  }

  await start()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop: async () => {
      await stop()
      await rm(dir, { recursive: true, force: true })
    },
    restart: async () => {
      await stop()
      await start()
    },
    pause: () => { child?.kill('SIGSTOP') },
    resume: () => { child?.kill('SIGCONT') }
  }
}

async function waitForReady (child: ChildProcess): Promise<void> {
  let output = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start within 10 s:\n${output}`)), 10_000)
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`redis-server exited with code ${code}:\n${output}`))
    })
  })
}
