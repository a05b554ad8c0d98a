import assert from 'node:assert/strict'
import { test } from 'node:test'
import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr'
import Fastify from 'fastify'
import { backplane, hub, requestSerializer } from '../src/index.js'
import type { HubConnectionContext } from '../src/index.js'
import { RawHubClient } from './helpers/raw-hub.js'
import { startRedisServer } from './helpers/redis-server.js'
import { baseUrl } from './helpers/signalr.js'
import { requestUpgrade } from './helpers/upgrade.js'

// The Redis password, bearer tokens, negotiated connection tokens and the negotiate secret
// must not appear in any log line, error response or health report, whatever the client sends.

const PASSWORD = 'redis-Pa55word-3c1f9a'
const TOKEN = 'bearer-token-77d0e2b4'
const WRONG_TOKEN = 'wrong-token-5a8e13c0'
const NEGOTIATE_SECRET = 'negotiate-secret-0b6f4d2e9a'

function assertNoSecrets (texts: string[], secrets: string[], source: string): void {
  for (const secret of secrets) {
    const leaks = texts.filter((text) => text.includes(secret))
    assert.deepEqual(leaks, [], `${source} contain "${secret}"`)
  }
}

test('secrets stay out of logs and replies', async (t) => {
  const redis = await startRedisServer(['--requirepass', PASSWORD])
  t.after(() => redis.stop())
  const lines: string[] = []
  const app = Fastify({
    logger: { level: 'trace', serializers: { req: requestSerializer }, stream: { write: (line: string) => { lines.push(line) } } }
  })
  t.after(() => app.close())
  await app.register(backplane, { redis: `redis://:${PASSWORD}@127.0.0.1:${redis.port}` })
  await app.register(hub, {
    path: '/testHub',
    negotiateSecret: NEGOTIATE_SECRET,
    authenticate: (_request, token) => token === TOKEN ? 'alice' : false,
    methods: {
      WhoAmI: (context: HubConnectionContext) => context.userId,
      Fail: () => { throw new Error('failure inside a hub method') }
    }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const replies: string[] = []
  const connectionTokens: string[] = []

  // The token in the query string, as browsers send it, with and without negotiation.
  for (const skipNegotiation of [true, false]) {
    const client = new HubConnectionBuilder()
      .withUrl(baseUrl(app) + '/testHub', { skipNegotiation, transport: HttpTransportType.WebSockets, accessTokenFactory: () => TOKEN })
      .configureLogging(LogLevel.None)
      .build()
    await client.start()
    assert.equal(await client.invoke('WhoAmI'), 'alice')
    await assert.rejects(client.invoke('Fail'), (err: Error) => {
      replies.push(err.message)
      return true
    })
    await client.stop()
  }

  // Negotiate by hand, so that the test has the connection token to reuse.
  const negotiated = await fetch(baseUrl(app) + `/testHub/negotiate?negotiateVersion=1&access_token=${TOKEN}`, { method: 'POST' })
  const { connectionToken } = await negotiated.json() as { connectionToken: string }
  connectionTokens.push(connectionToken)
  const wsUrl = baseUrl(app).replace(/^http/, 'ws') + '/testHub'
  for (const suffix of [`?id=${connectionToken}&access_token=${TOKEN}`, `?id=${connectionToken}&access_token=${TOKEN}`, `?id=${connectionToken}x&access_token=${TOKEN}`]) {
    const response = await requestUpgrade(wsUrl + suffix)
    replies.push(JSON.stringify(response.body ?? null))
  }

  // The token in the Authorization header, as Node and .NET clients can send it.
  const raw = await RawHubClient.open(wsUrl, { Authorization: `Bearer ${TOKEN}` })
  await raw.close()
  const rejectedHeaders: Array<Record<string, string>> = [{ Authorization: `Bearer ${WRONG_TOKEN}` }, { Origin: 'https://evil.example', Authorization: `Bearer ${TOKEN}` }]
  for (const headers of rejectedHeaders) {
    const response = await requestUpgrade(wsUrl, headers)
    replies.push(JSON.stringify(response.body))
  }
  const rejected = await requestUpgrade(wsUrl + `?access_token=${WRONG_TOKEN}`)
  assert.equal(rejected.status, 401)
  replies.push(JSON.stringify(rejected.body))

  const health = JSON.stringify(app.backplane.health())
  await app.close()

  const secrets = [PASSWORD, TOKEN, WRONG_TOKEN, NEGOTIATE_SECRET, ...connectionTokens]
  assertNoSecrets(lines, secrets, 'log lines')
  assertNoSecrets(replies, secrets, 'replies')
  assertNoSecrets([health], secrets, 'the health report')
  // The checks above must have had something to check.
  assert.ok(lines.some((line) => line.includes('access_token=[REDACTED]')), 'a request URL with a redacted token was logged')
  assert.ok(lines.some((line) => line.includes('backplane uses Redis pub/sub')), 'the Redis connection was logged')
  assert.ok(replies.some((reply) => reply.includes('FST_BACKPLANE_UNAUTHORIZED')), 'a rejected token was answered')
})

test('wrong Redis password stays out of errors', async (t) => {
  const redis = await startRedisServer(['--requirepass', PASSWORD])
  t.after(() => redis.stop())
  const wrongPassword = 'wrong-Pa55word-8e2d41'
  const lines: string[] = []
  const app = Fastify({ logger: { level: 'trace', stream: { write: (line: string) => { lines.push(line) } } } })
  t.after(() => app.close())
  void app.register(backplane, { redis: `redis://:${wrongPassword}@127.0.0.1:${redis.port}` })
  void app.register(hub, { path: '/testHub' })

  const error = await app.ready().then(() => undefined, (err: Error) => err)
  const texts = [...lines, String(error?.message), String(error?.stack), JSON.stringify(error ?? null)]

  assert.match(String(error?.message), /WRONGPASS/, 'ready() failed on the password')
  assertNoSecrets(texts, [wrongPassword, PASSWORD], 'log lines and the error')
})
