// Replays what Heroku's Node.js buildpack does with this repository, following its pnpm
// support (lib/package_managers/pnpm.sh in heroku/heroku-buildpack-nodejs). It installs with
// dev dependencies, runs the build script and reinstalls production dependencies only. Then it
// starts the Procfile's web process on the Node.js major that package.json pins. Heroku itself
// cannot be reached from the test machine, so the buildpack's own scripts never run here.
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr'
import { freePort } from '../src/cluster/local-cluster.js'
import type { NoteAdded } from '../src/notes.js'
import { cleanUpAtEnd, startRedis } from './helpers.js'

const execFileAsync = promisify(execFile)
const repositoryRoot = fileURLToPath(new URL('../../../', import.meta.url))
/** Heroku sends SIGKILL this long after SIGTERM. */
const HEROKU_SHUTDOWN_LIMIT_MS = 30_000

/**
 * Returns the environment for child processes, without the variables that the test runner and
 * pnpm set for their own children: NODE_TEST_CONTEXT would make a spawned node report to this test
 * runner, and npm_config_* would override the clean copy's settings.
 */
function cleanEnvironment (extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (key === 'NODE_TEST_CONTEXT' || key === 'NODE_OPTIONS' || /^(npm|pnpm)_/i.test(key)) continue
    env[key] = value
  }
  return { ...env, ...extra }
}

/** Runs a command to completion and returns its stdout; the error carries both outputs. */
async function run (command: string, args: string[], options: { cwd: string, env?: NodeJS.ProcessEnv }): Promise<string> {
  try {
    const { stdout } = await execFileAsync(command, args, {
      cwd: options.cwd,
      env: options.env ?? cleanEnvironment(),
      maxBuffer: 64 * 1024 * 1024,
      timeout: 180_000
    })
    return stdout
  } catch (err) {
    const failure = err as Error & { stdout?: string, stderr?: string }
    throw new Error(`${command} ${args.join(' ')} failed in ${options.cwd}: ${failure.message}\n${failure.stdout ?? ''}\n${failure.stderr ?? ''}`)
  }
}

/**
 * Copies the files that git tracks or would track, as they are in the work tree, so the copy
 * includes uncommitted changes and nothing that .gitignore excludes (node_modules, dist).
 */
async function copyWorkTree (destination: string): Promise<number> {
  const listing = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: repositoryRoot })
  let copied = 0
  for (const path of listing.split('\0')) {
    // A tracked file deleted in the work tree is listed too, and is gone from the copy as well.
    if (path === '' || !existsSync(join(repositoryRoot, path))) continue
    await mkdir(dirname(join(destination, path)), { recursive: true })
    await copyFile(join(repositoryRoot, path), join(destination, path))
    copied++
  }
  return copied
}

/** Returns the path of a node binary of the given major version, fetched with npx if needed. */
async function nodeBinary (major: number): Promise<string> {
  if (Number(process.versions.node.split('.')[0]) === major) return process.execPath
  // The npm package "node" ships the official binaries; npx caches them between runs.
  const path = await run('npx', ['--yes', `node@${major}`, '-e', 'process.stdout.write(process.execPath)'], { cwd: tmpdir() })
  return path.trim()
}

test('Heroku build replay serves the page on the pinned Node', { timeout: 300_000 }, async (t) => {
  const buildDirectory = await mkdtemp(join(tmpdir(), 'notes-board-heroku-build-'))
  cleanUpAtEnd(t, () => rm(buildDirectory, { recursive: true, force: true }))
  const copied = await copyWorkTree(buildDirectory)
  t.diagnostic(`copied ${copied} files to ${buildDirectory}`)

  const rootPackage = JSON.parse(await readFile(join(buildDirectory, 'package.json'), 'utf8')) as {
    engines?: { node?: string }
    packageManager?: string
    scripts?: Record<string, string>
  }
  const enginesNode = rootPackage.engines?.node ?? ''
  assert.match(enginesNode, /^(22|24)\.x$/, 'engines.node pins a Node.js LTS line that Heroku supports')
  assert.match(rootPackage.packageManager ?? '', /^pnpm@\d+\.\d+\.\d+$/, 'packageManager pins pnpm, which the buildpack installs')
  assert.ok(rootPackage.scripts?.build !== undefined || rootPackage.scripts?.['heroku-postbuild'] !== undefined, 'a build script exists')

  // The buildpack sets NODE_ENV=production and does not give the build a TTY. CI=true lets
  // pnpm replace node_modules without asking.
  const buildEnv = cleanEnvironment({ NODE_ENV: 'production', CI: 'true' })
  const pnpm = async (...args: string[]): Promise<string> => await run('pnpm', args, { cwd: buildDirectory, env: buildEnv })

  await t.test('install with dev dependencies', async () => {
    // --prefer-offline takes packages from the local store, which the workspace's own install filled.
    await pnpm('install', '--no-prod', '--frozen-lockfile', '--prefer-offline')
  })

  await t.test('build', async () => {
    await pnpm('run', '--if-present', 'heroku-prebuild')
    await pnpm('run', '--if-present', rootPackage.scripts?.['heroku-postbuild'] === undefined ? 'build' : 'heroku-postbuild')
    assert.ok(existsSync(join(buildDirectory, 'packages/demo-app/dist/server.js')), 'the build wrote dist/server.js')
  })

  await t.test('prune to production dependencies', async (st) => {
    // In a workspace the buildpack skips pruning when a project has install lifecycle scripts,
    // and otherwise deletes every project's node_modules and installs production dependencies.
    const projects = JSON.parse(await pnpm('list', '--recursive', '--json', '--depth', '-1')) as Array<{ path: string }>
    assert.ok(projects.length >= 3, `pnpm lists the workspace projects: ${projects.map(({ path }) => path).join(', ')}`)
    for (const { path } of projects) {
      const scripts = (JSON.parse(await readFile(join(path, 'package.json'), 'utf8')) as { scripts?: Record<string, string> }).scripts ?? {}
      const lifecycle = ['pnpm:devPreinstall', 'preinstall', 'install', 'postinstall', 'prepare'].filter((name) => name in scripts)
      if (lifecycle.length > 0) {
        st.diagnostic(`${path} has ${lifecycle.join(', ')}, so the buildpack keeps the dev dependencies, and so does this replay`)
        return
      }
    }

    for (const { path } of projects) await rm(join(path, 'node_modules'), { recursive: true, force: true })
    await pnpm('install', '--prod', '--frozen-lockfile', '--prefer-offline')
    assert.ok(!existsSync(join(buildDirectory, 'node_modules/typescript')), 'typescript, a dev dependency, is gone')
    assert.ok(!existsSync(join(buildDirectory, 'packages/demo-app/node_modules/playwright-core')), 'playwright-core, a dev dependency, is gone')
    assert.ok(existsSync(join(buildDirectory, 'packages/demo-app/node_modules/fastify')), 'fastify, a dependency, stays')
  })

  const major = Number(enginesNode.split('.')[0])
  const node = await nodeBinary(major)
  const version = (await run(node, ['--version'], { cwd: buildDirectory })).trim()
  assert.match(version, new RegExp(`^v${major}\\.`), `${node} is Node.js ${major}`)
  t.diagnostic(`web process runs on Node.js ${version}`)

  // The Procfile's web command, with its leading "node" replaced by the pinned binary.
  const procfile = await readFile(join(buildDirectory, 'Procfile'), 'utf8')
  const webLine = procfile.split('\n').find((line) => line.startsWith('web:'))
  assert.ok(webLine !== undefined, 'the Procfile has a web process')
  const [executable, ...args] = webLine.slice('web:'.length).trim().split(/\s+/)
  assert.equal(executable, 'node', 'the web process starts with node')

  const redis = await startRedis(t)
  const port = await freePort()
  const output: string[] = []
  const web = spawn(node, args, {
    cwd: buildDirectory,
    // What Heroku sets, except HOST: a dyno listens on 0.0.0.0, and this test stays on loopback.
    env: { PATH: process.env.PATH ?? '', PORT: String(port), HOST: '127.0.0.1', DYNO: 'web.1', REDIS_URL: redis.url, BACKPLANE_SECRET: 'replay-secret-0123456789abcdef', NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  cleanUpAtEnd(t, () => { if (web.exitCode === null && web.signalCode === null) web.kill('SIGKILL') })
  for (const stream of [web.stdout, web.stderr]) createInterface({ input: stream }).on('line', (line) => output.push(line))

  const base = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 30_000
  for (;;) {
    assert.equal(web.exitCode, null, `the web process exited early:\n${output.join('\n')}`)
    assert.ok(Date.now() < deadline, `the web process did not answer within 30 s:\n${output.join('\n')}`)
    const healthy = await fetch(`${base}/healthz`).then((response) => response.ok, () => false)
    if (healthy) break
    await new Promise((resolve) => setTimeout(resolve, 200))
  }

  await t.test('healthz', async () => {
    const response = await fetch(`${base}/healthz`)
    const { backplane, ...summary } = await response.json() as { backplane: { healthy: boolean } } & Record<string, unknown>
    assert.deepEqual(summary, { status: 'ok', instanceId: 'web.1', transport: 'redis', redisConnected: true })
    assert.equal(backplane.healthy, true)
  })

  await t.test('page and every script and stylesheet it loads', async () => {
    const page = await fetch(`${base}/`)
    assert.equal(page.status, 200)
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/)
    const html = await page.text()

    const scripts = [...html.matchAll(/<script\b[^>]*\bsrc="([^"]+)"/g)].map((match) => match[1]!)
    const stylesheets = [...html.matchAll(/<link\b[^>]*\brel="stylesheet"[^>]*\bhref="([^"]+)"/g)].map((match) => match[1]!)
    assert.ok(scripts.length >= 2, `the page loads the SignalR bundle and its own script: ${scripts.join(', ')}`)
    assert.ok(stylesheets.length >= 1, 'the page loads a stylesheet')

    for (const [paths, type] of [[scripts, /javascript/], [stylesheets, /^text\/css/]] as const) {
      for (const path of paths) {
        const response = await fetch(new URL(path, base))
        assert.equal(response.status, 200, path)
        assert.match(response.headers.get('content-type') ?? '', type, path)
        assert.ok((await response.text()).length > 0, `${path} is not empty`)
      }
    }
  })

  await t.test('hub stores and returns a note', async () => {
    const client = new HubConnectionBuilder()
      .withUrl(`${base}/noteHub`, { skipNegotiation: true, transport: HttpTransportType.WebSockets })
      .configureLogging(LogLevel.None)
      .build()
    cleanUpAtEnd(t, () => client.stop())
    await client.start()
    await client.invoke('JoinBoard', 'replay')
    const added = await client.invoke<NoteAdded>('AddNote', 'replay', 'Built like Heroku builds it')
    const snapshot = await client.invoke<{ notes: unknown[] }>('JoinBoard', 'replay')
    assert.deepEqual(snapshot.notes, [added.note])
  })

  await t.test('SIGTERM stops the web process in time', async () => {
    const started = Date.now()
    const exited = once(web, 'exit')
    web.kill('SIGTERM')
    const [code] = await exited
    const elapsed = Date.now() - started
    assert.equal(code, 0, output.join('\n'))
    assert.ok(elapsed < HEROKU_SHUTDOWN_LIMIT_MS, `stopped after ${elapsed} ms`)
    assert.ok(output.some((line) => line.includes('"msg":"server closed"')), 'logs "server closed"')
  })
})
