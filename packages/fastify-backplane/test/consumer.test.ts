import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr'
import { startRedisServer } from './helpers/redis-server.js'

// Installs the packed tarball the way an app would, in a project outside the workspace, so that
// the test checks only what `files`, `exports`, `dependencies` and the declarations publish.

const run = promisify(execFile)
const packageDir = dirname(dirname(fileURLToPath(import.meta.url)))
const workspaceRequire = createRequire(import.meta.url)

/** The app a consumer writes: both plugins, a typed hub method, and a route that broadcasts. */
const serverSource = `import Fastify from 'fastify'
import { backplane, hub } from 'fastify-backplane'
import type { HubConnectionContext } from 'fastify-backplane'

interface ChatClient {
  ReceiveMessage: [from: string, text: string]
}

const app = Fastify()
await app.register(backplane, { redis: process.env.REDIS_URL, channelPrefix: 'consumer:' })
await app.register(hub, {
  path: '/chatHub',
  methods: {
    async JoinRoom (context: HubConnectionContext<ChatClient>, room: string) {
      await context.groups.add(room)
    }
  }
})

app.post<{ Body: { room: string, text: string } }>('/announce', async (request) => {
  await app.broadcast('ReceiveMessage', ['server', request.body.text], { group: request.body.room })
  return { ok: true }
})
app.post<{ Body: { room: string, text: string } }>('/announce-typed', async (request) => {
  await app.backplane.hubContext<ChatClient>().clients.group(request.body.room).send('ReceiveMessage', 'typed', request.body.text)
  return { ok: true }
})

await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address()
if (address === null || typeof address === 'string') throw new Error('the app is not listening on TCP')
console.log(JSON.stringify({ port: address.port, transport: app.backplane.transport }))

process.once('SIGTERM', () => {
  void app.close().then(() => process.exit(0))
})
`

// The strictest settings an app is likely to use, checking the declarations of every library
// too. ioredis's declarations import redis-errors, which ships no types, so the package
// depends on @types/redis-errors.
const tsconfig = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    skipLibCheck: false,
    types: ['node'],
    rootDir: 'src',
    outDir: 'dist'
  },
  include: ['src']
}

/** Runs a command and returns its stdout. The error of a failed command contains its output. */
async function exec (command: string, args: string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await run(command, args, { cwd, env: process.env, maxBuffer: 16 * 1024 * 1024 })
    return stdout
  } catch (err) {
    const { stdout = '', stderr = '' } = err as { stdout?: string, stderr?: string }
    throw new Error(`${command} ${args.join(' ')} failed in ${cwd}:\n${stdout}\n${stderr}`, { cause: err })
  }
}

/** The version of a package that the workspace installed, so the scratch project gets the same one. */
async function workspaceVersion (name: string): Promise<string> {
  const manifest = JSON.parse(await readFile(workspaceRequire.resolve(`${name}/package.json`), 'utf8')) as { version: string }
  return manifest.version
}

/**
 * Installs the project's dependencies from the local pnpm store. `--offline` needs the package
 * metadata that pnpm caches when it resolves, and a machine that only ran frozen-lockfile
 * installs may lack it. In that case the install falls back to `--prefer-offline`, which
 * fetches the missing metadata from the registry and the packages from the store.
 */
async function installOffline (t: TestContext, projectDir: string): Promise<void> {
  const args = ['install', '--no-frozen-lockfile', '--reporter=append-only']
  try {
    await exec('pnpm', [...args, '--offline'], projectDir)
  } catch (err) {
    if (!(err as Error).message.includes('ERR_PNPM_NO_OFFLINE_META')) throw err
    t.diagnostic('pnpm install --offline found no cached metadata; installed with --prefer-offline')
    await exec('pnpm', [...args, '--prefer-offline'], projectDir)
  }
}

/** Starts the compiled app and resolves with the port it printed. */
async function startServer (t: TestContext, projectDir: string, redisUrl: string): Promise<{ port: number, transport: string }> {
  const child = spawn(process.execPath, ['dist/server.js'], {
    cwd: projectDir,
    env: { ...process.env, REDIS_URL: redisUrl },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.after(() => stopServer(child))

  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const lines = createInterface({ input: child.stdout! })
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`the consumer app exited with code ${String(code)}:\n${stderr}`)
  })
  const [line] = await Promise.race([once(lines, 'line') as Promise<[string]>, exited])
  return JSON.parse(line) as { port: number, transport: string }
}

async function stopServer (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

async function postJson (port: number, path: string, body: unknown): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body)
  })
  assert.equal(response.status, 200, `POST ${path} answered ${response.status}: ${await response.text()}`)
}

test('packed tarball works in a fresh project', { timeout: 120_000 }, async (t) => {
  const scratchDir = await mkdtemp(join(tmpdir(), 'fastify-backplane-consumer-'))
  t.after(() => rm(scratchDir, { recursive: true, force: true }))
  const redis = await startRedisServer()
  t.after(() => redis.stop())

  // Pack the files that `files` selects, as a publish would.
  const packDir = join(scratchDir, 'pack')
  await mkdir(packDir)
  await exec('pnpm', ['pack', '--pack-destination', packDir], packageDir)
  const [tarball] = (await readdir(packDir)).filter((name) => name.endsWith('.tgz'))
  assert.ok(tarball !== undefined, `pnpm pack wrote no tarball to ${packDir}`)

  const projectDir = join(scratchDir, 'project')
  await mkdir(join(projectDir, 'src'), { recursive: true })
  await writeFile(join(projectDir, 'package.json'), JSON.stringify({
    name: 'fastify-backplane-consumer',
    private: true,
    type: 'module',
    dependencies: {
      'fastify-backplane': `file:${join(packDir, tarball)}`,
      fastify: await workspaceVersion('fastify'),
      '@types/node': await workspaceVersion('@types/node')
    }
  }, null, 2))
  await writeFile(join(projectDir, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2))
  await writeFile(join(projectDir, 'src', 'server.ts'), serverSource)
  await installOffline(t, projectDir)

  await t.test('ESM import', async () => {
    const output = await exec(process.execPath, ['--input-type=module', '-e', `
      import * as namespace from 'fastify-backplane'
      import manifest from 'fastify-backplane/package.json' with { type: 'json' }
      console.log(JSON.stringify({
        backplane: typeof namespace.backplane,
        hub: typeof namespace.hub,
        defaultIsBackplane: namespace.default === namespace.backplane,
        hubException: typeof namespace.HubException,
        version: manifest.version
      }))
    `], projectDir)
    assert.deepEqual(JSON.parse(output), { backplane: 'function', hub: 'function', defaultIsBackplane: true, hubException: 'function', version: '0.1.0' })
  })

  await t.test('CommonJS require', async () => {
    // require() of an ES module works without a flag from Node 20.19 and 22.12, the versions
    // that `engines` names.
    await writeFile(join(projectDir, 'check.cjs'), `
      const namespace = require('fastify-backplane')
      console.log(JSON.stringify({
        backplane: typeof namespace.backplane,
        hub: typeof namespace.hub,
        defaultIsBackplane: namespace.default === namespace.backplane
      }))
    `)
    const output = await exec(process.execPath, ['check.cjs'], projectDir)
    assert.deepEqual(JSON.parse(output), { backplane: 'function', hub: 'function', defaultIsBackplane: true })
  })

  await t.test('TypeScript compile', async () => {
    const tsc = workspaceRequire.resolve('typescript/bin/tsc')
    await exec(process.execPath, [tsc, '-p', 'tsconfig.json'], projectDir)
  })

  await t.test('broadcast across two instances', async (t) => {
    const first = await startServer(t, projectDir, redis.url)
    const second = await startServer(t, projectDir, redis.url)
    assert.equal(first.transport, 'redis')
    assert.equal(second.transport, 'redis')

    const client = new HubConnectionBuilder()
      .withUrl(`http://127.0.0.1:${first.port}/chatHub`, { skipNegotiation: true, transport: HttpTransportType.WebSockets })
      .configureLogging(LogLevel.None)
      .build()
    const received: string[][] = []
    const arrivals: Array<() => void> = []
    client.on('ReceiveMessage', (from: string, text: string) => {
      received.push([from, text])
      arrivals.shift()?.()
    })
    await client.start()
    t.after(() => client.stop())
    await client.invoke('JoinRoom', 'lobby')

    const next = (): Promise<void> => new Promise((resolve) => arrivals.push(resolve))
    let arrived = next()
    await postJson(second.port, '/announce', { room: 'lobby', text: 'hello' })
    await arrived
    arrived = next()
    await postJson(second.port, '/announce-typed', { room: 'lobby', text: 'typed hello' })
    await arrived
    assert.deepEqual(received, [['server', 'hello'], ['typed', 'typed hello']])
  })
})
