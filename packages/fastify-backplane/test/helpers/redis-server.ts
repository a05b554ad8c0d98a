import { execFile, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

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
 * `['--requirepass', 'secret']`. Resolves once the server accepts connections. With `tls`, the
 * port speaks only TLS, with a self-signed certificate made by `openssl`, as Heroku Key-Value
 * Store does, and `url` is a `rediss://` URL.
 */
export async function startRedisServer (extraArgs: string[] = [], { tls = false } = {}): Promise<RedisServer> {
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'backplane-redis-'))
  const portArgs = tls ? await tlsPortArgs(dir, port) : ['--port', String(port)]
  let child: ChildProcess | undefined

  const start = async (): Promise<void> => {
    await mkdir(dir, { recursive: true })
    child = spawn('redis-server', [
      '--bind', '127.0.0.1', ...portArgs, '--save', '', '--appendonly', 'no',
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
    url: `${tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
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

/**
 * Writes a self-signed certificate and its key into the server's folder, which a restart keeps,
 * and returns the arguments for a port that speaks only TLS.
 */
async function tlsPortArgs (dir: string, port: number): Promise<string[]> {
  const certFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=fastify-backplane-test',
    '-keyout', keyFile, '-out', certFile
  ])
  return ['--port', '0', '--tls-port', String(port), '--tls-cert-file', certFile, '--tls-key-file', keyFile, '--tls-auth-clients', 'no']
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
