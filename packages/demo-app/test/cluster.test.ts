import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { get } from 'node:http'
import { createInterface } from 'node:readline'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { cleanUpAtEnd } from './helpers.js'

const packageDirectory = fileURLToPath(new URL('..', import.meta.url))

/** GETs a URL on a new TCP connection, so the round-robin front picks the next instance. */
async function getJson (url: string): Promise<Record<string, unknown>> {
  return await new Promise((resolve, reject) => {
    get(url, { agent: false }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { body += chunk })
      response.on('end', () => resolve(JSON.parse(body) as Record<string, unknown>))
    }).on('error', reject)
  })
}

function isRunning (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

test('cluster command starts and stops everything', { timeout: 90_000 }, async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cluster.ts'], {
    cwd: packageDirectory,
    env: { ...process.env, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const output: string[] = []
  cleanUpAtEnd(t, () => { if (child.exitCode === null) child.kill('SIGKILL') })
  child.stderr.on('data', (chunk: Buffer) => output.push(chunk.toString()))

  // The command prints one line per process once every process responds.
  const lines = createInterface({ input: child.stdout })
  const urls = new Map<string, { url: string, pid?: number }>()
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the cluster did not start within 60 s:\n${output.join('')}`)), 60_000)
    child.once('exit', (code) => reject(new Error(`the cluster exited with code ${code}:\n${output.join('')}`)))
    lines.on('line', (line) => {
      output.push(line + '\n')
      const match = /^ {2}(front|web\.\d|redis)\s+(\S+?)(?:\/\?board=team)?\s+(?:pid (\d+)|round robin)/.exec(line)
      if (match !== null) urls.set(match[1]!, { url: match[2]!, ...(match[3] === undefined ? {} : { pid: Number(match[3]) }) })
      if (line.includes('Ctrl-C stops everything')) {
        clearTimeout(timer)
        resolve()
      }
    })
  })

  assert.deepEqual([...urls.keys()], ['front', 'web.1', 'web.2', 'redis'], output.join(''))
  for (const [name, { url }] of urls) {
    assert.match(url, name === 'redis' ? /^redis:\/\/127\.0\.0\.1:\d+$/ : /^http:\/\/127\.0\.0\.1:\d+$/, name)
  }
  const pids = [...urls.values()].flatMap(({ pid }) => pid === undefined ? [] : [pid])
  assert.equal(pids.length, 3, 'the instances and redis print their pids')
  for (const pid of pids) assert.ok(isRunning(pid), `pid ${pid} runs`)

  // Each instance responds directly, and the front alternates between them.
  for (const name of ['web.1', 'web.2']) {
    const health = await getJson(`${urls.get(name)!.url}/healthz`)
    assert.equal(health.status, 'ok', name)
    assert.equal(health.instanceId, name)
    assert.equal(health.transport, 'redis')
    assert.equal(health.redisConnected, true)
  }
  const viaFront = []
  for (let i = 0; i < 4; i++) viaFront.push((await getJson(`${urls.get('front')!.url}/healthz`)).instanceId)
  assert.equal(new Set(viaFront).size, 2, `the front reached both instances: ${viaFront.join(', ')}`)

  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const [code] = await exited
  assert.equal(code, 0, output.join(''))
  assert.match(output.join(''), /Local cluster stopped\./)
  for (const pid of pids) assert.ok(!isRunning(pid), `pid ${pid} has stopped`)
})
