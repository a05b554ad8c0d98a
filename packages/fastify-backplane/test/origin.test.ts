import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import { backplane, hub } from '../src/index.js'
import type { HubOptions } from '../src/index.js'
import { startInstance } from './helpers/instances.js'
import { baseUrl, connectClient } from './helpers/signalr.js'
import { requestUpgrade } from './helpers/upgrade.js'

const methods = { Echo: (_context: unknown, value: unknown) => value }
const ORIGIN_NOT_ALLOWED = 'FST_BACKPLANE_ORIGIN_NOT_ALLOWED'

function hubUrl (app: FastifyInstance): string {
  return baseUrl(app).replace(/^http/, 'ws') + '/testHub'
}

async function startHub (t: TestContext, options: Partial<HubOptions> = {}, logLines?: string[]): Promise<{ app: FastifyInstance, connected: () => number }> {
  let connections = 0
  const app = await startInstance(t, {
    ...(logLines === undefined ? {} : { logLines }),
    hub: { methods, onConnected: () => { connections++ }, ...options }
  })
  return { app, connected: () => connections }
}

/** Starts a hub on a Fastify instance with `trustProxy`, as an app behind Heroku's router runs it. */
async function startBehindProxy (t: TestContext, trustProxy: boolean): Promise<FastifyInstance> {
  const app = Fastify({ trustProxy })
  t.after(() => app.close())
  await app.register(backplane)
  await app.register(hub, { path: '/testHub', methods })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return app
}

async function assertStillServes (t: TestContext, app: FastifyInstance): Promise<void> {
  const client = await connectClient(app, '/testHub')
  t.after(() => client.stop())
  assert.equal(await client.invoke('Echo', 'still serving'), 'still serving')
}

test('cross-origin upgrade rejected', async (t) => {
  const { app, connected } = await startHub(t)

  const response = await requestUpgrade(hubUrl(app), { Origin: 'https://evil.example' })

  assert.equal(response.status, 403)
  const body = response.body as { code?: string, message?: string }
  assert.equal(body.code, ORIGIN_NOT_ALLOWED)
  assert.match(body.message ?? '', /Origin "https:\/\/evil\.example" is not allowed to connect to hub \/testHub/)
  assert.equal(connected(), 0, 'no WebSocket was opened')
  await assertStillServes(t, app)
})

test('same-origin upgrade accepted', async (t) => {
  const { app } = await startHub(t)

  const response = await requestUpgrade(hubUrl(app), { Origin: baseUrl(app) })

  assert.equal(response.status, 101)
})

test('upgrade without Origin accepted', async (t) => {
  const { app } = await startHub(t)

  const response = await requestUpgrade(hubUrl(app))

  assert.equal(response.status, 101)
})

test('same origin on other port rejected', async (t) => {
  const { app } = await startHub(t)
  const port = new URL(baseUrl(app)).port

  const response = await requestUpgrade(hubUrl(app), { Origin: `http://127.0.0.1:${Number(port) + 1}` })

  assert.equal(response.status, 403)
})

test('null origin rejected by default', async (t) => {
  const { app } = await startHub(t)

  const response = await requestUpgrade(hubUrl(app), { Origin: 'null' })

  assert.equal(response.status, 403)
})

test('allowed origins list', async (t) => {
  const { app } = await startHub(t, { allowedOrigins: ['https://app.example.com', 'null'] })

  const cases: Array<[string, number]> = [
    ['https://app.example.com', 101],
    ['https://APP.example.com:443', 101],
    ['null', 101],
    ['http://app.example.com', 403],
    ['https://app.example.com:8443', 403],
    ['https://app.example.com.evil.example', 403],
    ['https://evil.example', 403],
    [baseUrl(app), 403],
    ['not a url', 403]
  ]
  for (const [origin, status] of cases) {
    const response = await requestUpgrade(hubUrl(app), { Origin: origin })
    assert.equal(response.status, status, origin)
  }
})

test('wildcard allows any origin', async (t) => {
  const { app } = await startHub(t, { allowedOrigins: ['*'] })

  const response = await requestUpgrade(hubUrl(app), { Origin: 'https://anywhere.example' })

  assert.equal(response.status, 101)
})

test('origin function decides', async (t) => {
  const seen: string[] = []
  const { app } = await startHub(t, {
    allowedOrigins: async (origin, request) => {
      seen.push(`${origin} ${request.url}`)
      return origin.endsWith('.trusted.example')
    }
  })

  assert.equal((await requestUpgrade(hubUrl(app), { Origin: 'https://a.trusted.example' })).status, 101)
  assert.equal((await requestUpgrade(hubUrl(app), { Origin: 'https://evil.example' })).status, 403)
  assert.deepEqual(seen, ['https://a.trusted.example /testHub', 'https://evil.example /testHub'])
})

test('forwarded origin with trustProxy', async (t) => {
  const app = await startBehindProxy(t, true)
  const headers = { Origin: 'https://notes.herokuapp.com', 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'notes.herokuapp.com' }

  const response = await requestUpgrade(hubUrl(app), headers)

  assert.equal(response.status, 101)
})

test('forwarded headers ignored without trustProxy', async (t) => {
  const app = await startBehindProxy(t, false)
  const headers = { Origin: 'https://notes.herokuapp.com', 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'notes.herokuapp.com' }

  const response = await requestUpgrade(hubUrl(app), headers)

  assert.equal(response.status, 403)
})

test('cross-origin negotiate rejected', async (t) => {
  const { app } = await startHub(t)

  const rejected = await fetch(baseUrl(app) + '/testHub/negotiate?negotiateVersion=1', { method: 'POST', headers: { Origin: 'https://evil.example' } })
  const accepted = await fetch(baseUrl(app) + '/testHub/negotiate?negotiateVersion=1', { method: 'POST', headers: { Origin: baseUrl(app) } })

  assert.equal(rejected.status, 403)
  assert.equal((await rejected.json() as { code?: string }).code, ORIGIN_NOT_ALLOWED)
  assert.equal(accepted.status, 200)
})

test('same-origin default logged at startup', async (t) => {
  const lines: string[] = []
  await startHub(t, {}, lines)
  const listed: string[] = []
  await startHub(t, { allowedOrigins: ['https://app.example.com'] }, listed)

  const notice = 'hub accepts browser connections from its own origin only; set allowedOrigins to allow pages on other origins'
  const entries = lines.map((line) => JSON.parse(line) as { level: number, msg: string })
  assert.deepEqual(entries.filter((entry) => entry.msg === notice).map((entry) => entry.level), [30])
  assert.ok(!listed.some((line) => line.includes(notice)))
})

test('invalid allowedOrigins fail ready', async (t) => {
  for (const allowedOrigins of [['https://app.example.com/path'], ['app.example.com'], [42], 'https://app.example.com']) {
    const app = Fastify()
    t.after(() => app.close())
    void app.register(backplane)
    void app.register(hub, { path: '/testHub', allowedOrigins: allowedOrigins as string[] })

    await assert.rejects(async () => { await app.ready() }, { code: 'FST_BACKPLANE_INVALID_OPTION' }, JSON.stringify(allowedOrigins))
  }
})
