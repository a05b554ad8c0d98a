import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr'
import { fileURLToPath } from 'node:url'
import { freePort } from '../../fastify-backplane/test/helpers/redis-server.js'
import { cleanUpAtEnd, startRedis } from './helpers.js'

const packageDirectory = fileURLToPath(new URL('..', import.meta.url))

interface LogLine {
  level: number
  msg: string
  [field: string]: unknown
}

/** Runs `src/server.ts` in a child process and collects its JSON log lines. */
function startServer (env: Record<string, string>): { child: ChildProcess, lines: LogLine[], waitForLine: (msg: string) => Promise<LogLine>, output: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: packageDirectory,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const lines: LogLine[] = []
  const raw: string[] = []
  const waiters: Array<{ msg: string, resolve: (line: LogLine) => void }> = []

  createInterface({ input: child.stdout! }).on('line', (text) => {
    raw.push(text)
    let line: LogLine
    try {
      line = JSON.parse(text) as LogLine
    } catch {
      return
    }
    lines.push(line)
    for (const waiter of waiters.filter((candidate) => line.msg.startsWith(candidate.msg))) {
      waiters.splice(waiters.indexOf(waiter), 1)
      waiter.resolve(line)
    }
  })
  child.stderr!.on('data', (chunk: Buffer) => raw.push(chunk.toString()))

  const waitForLine = async (msg: string): Promise<LogLine> => {
    const seen = lines.find((line) => line.msg.startsWith(msg))
    if (seen !== undefined) return seen
    let timer: NodeJS.Timeout | undefined
    return await Promise.race([
      new Promise<LogLine>((resolve) => waiters.push({ msg, resolve })),
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no log line "${msg}" within 15 s. Output:\n${raw.join('\n')}`)), 15_000)
      }),
      once(child, 'exit').then(([code]) => { throw new Error(`server exited with code ${code} before logging "${msg}". Output:\n${raw.join('\n')}`) })
    ]).finally(() => clearTimeout(timer))
  }
  return { child, lines, waitForLine, output: () => raw.join('\n') }
}

test('server entry serves and stops on SIGTERM', { timeout: 60_000 }, async (t) => {
  const redis = await startRedis(t)
  const port = await freePort()
  const server = startServer({ PORT: String(port), HOST: '127.0.0.1', REDIS_URL: redis.url, DYNO: 'web.3' })
  cleanUpAtEnd(t, () => { if (server.child.exitCode === null) server.child.kill('SIGKILL') })

  await server.waitForLine('Server listening at')
  const health = await fetch(`http://127.0.0.1:${port}/healthz`)
  const { backplane, ...summary } = await health.json() as { backplane: { healthy: boolean } } & Record<string, unknown>
  assert.deepEqual(summary, { status: 'ok', instanceId: 'web.3', transport: 'redis', redisConnected: true })
  assert.equal(backplane.healthy, true)

  // A connected client must not hold up the shutdown, because the hub sends it a Close message.
  const client = new HubConnectionBuilder()
    .withUrl(`http://127.0.0.1:${port}/noteHub`, { skipNegotiation: true, transport: HttpTransportType.WebSockets })
    .configureLogging(LogLevel.None)
    .build()
  cleanUpAtEnd(t, () => client.stop())
  await client.start()
  assert.deepEqual(await client.invoke('JoinBoard', 'shutdown'), { boardId: 'shutdown', epoch: null, revision: 0, notes: [] })
  const clientClosed = new Promise<void>((resolve) => client.onclose(() => resolve()))

  const exited = once(server.child, 'exit')
  server.child.kill('SIGTERM')
  const [code, signal] = await exited
  assert.equal(code, 0, `exit code. Output:\n${server.output()}`)
  assert.equal(signal, null)
  await clientClosed

  const shuttingDown = server.lines.find((line) => line.msg === 'shutting down')
  assert.equal(shuttingDown?.signal, 'SIGTERM')
  assert.equal(shuttingDown?.instanceId, 'web.3')
  assert.ok(server.lines.some((line) => line.msg === 'server closed'), 'logs "server closed"')
  assert.ok(!server.output().includes(redis.url), 'no log line contains the Redis URL')
})

test('server entry rejects an invalid PORT', { timeout: 30_000 }, async () => {
  const server = startServer({ PORT: 'eighty' })
  const [code] = await once(server.child, 'exit')
  assert.equal(code, 1)
  const fatal = server.lines.find((line) => line.msg === 'invalid configuration')
  assert.ok(fatal !== undefined, `logs "invalid configuration". Output:\n${server.output()}`)
  assert.match(String((fatal.err as { message?: string } | undefined)?.message), /Invalid PORT "eighty"/)
})

test('server entry never logs the Redis password', { timeout: 30_000 }, async (t) => {
  const redis = await startRedis(t, ['--requirepass', 'the-right-password'])
  const port = await freePort()
  // AUTH fails with WRONGPASS, so the app cannot start. ioredis attaches the AUTH arguments to
  // the error, so a careless log line would contain the password.
  const server = startServer({ PORT: String(port), HOST: '127.0.0.1', REDIS_URL: `redis://:hunter2-secret@127.0.0.1:${redis.port}` })
  cleanUpAtEnd(t, () => { if (server.child.exitCode === null) server.child.kill('SIGKILL') })

  const [code] = await once(server.child, 'exit')
  assert.equal(code, 1, `exit code. Output:\n${server.output()}`)
  const failures = server.lines.filter((line) => line.msg === 'app failed to start')
  assert.equal(failures.length, 1, `logs "app failed to start" once. Output:\n${server.output()}`)
  assert.match(String((failures[0]?.err as { message?: string } | undefined)?.message), /WRONGPASS/)
  assert.ok(!server.output().includes('hunter2-secret'), 'no output contains the password')
})

test('server entry exits when Redis refuses', { timeout: 45_000 }, async (t) => {
  const port = await freePort()
  const closedRedisPort = await freePort()
  const server = startServer({ PORT: String(port), HOST: '127.0.0.1', REDIS_URL: `redis://127.0.0.1:${closedRedisPort}` })
  cleanUpAtEnd(t, () => { if (server.child.exitCode === null) server.child.kill('SIGKILL') })

  // The start waits 10 s for Redis by default, and the close after it is bounded.
  const [code] = await once(server.child, 'exit')
  assert.equal(code, 1, `exit code. Output:\n${server.output()}`)
  const failures = server.lines.filter((line) => line.msg === 'app failed to start')
  assert.equal(failures.length, 1, `logs "app failed to start" once. Output:\n${server.output()}`)
  const retrying = server.lines.filter((line) => line.msg === 'Redis not ready yet; retrying')
  assert.equal(retrying.length, 1, `logs "Redis not ready yet; retrying" once. Output:\n${server.output()}`)
  assert.equal((retrying[0]?.error as { code?: string } | undefined)?.code, 'ECONNREFUSED')
  const err = failures[0]?.err as { code?: string, message?: string } | undefined
  assert.equal(err?.code, 'FST_BACKPLANE_REDIS_UNREACHABLE')
  assert.match(String(err?.message), new RegExp(`Redis at 127\\.0\\.0\\.1:${closedRedisPort} was not ready within 10000 ms`))
  assert.match(String(err?.message), /ECONNREFUSED/)
})

test('server entry logs a Redis outage', { timeout: 60_000 }, async (t) => {
  const redis = await startRedis(t)
  const port = await freePort()
  const server = startServer({ PORT: String(port), HOST: '127.0.0.1', REDIS_URL: redis.url })
  cleanUpAtEnd(t, () => { if (server.child.exitCode === null) server.child.kill('SIGKILL') })
  await server.waitForLine('Server listening at')

  await redis.stop()
  const failed = await server.waitForLine('Redis connection failed; reconnecting')
  assert.equal(failed.redis, `127.0.0.1:${redis.port}`)
  assert.equal((failed.error as { code?: string } | undefined)?.code, 'ECONNREFUSED')
  // ioredis retries every 2 s at most, so this spans a few failed attempts.
  await delay(3000)
  assert.equal(server.lines.filter((line) => line.msg === 'Redis connection failed; reconnecting').length, 1, 'one warning per outage')

  await redis.restart()
  await server.waitForLine('Redis connection restored')
  assert.ok(!server.output().includes('Unhandled error event'), `no unhandled ioredis error events. Output:\n${server.output()}`)
})
