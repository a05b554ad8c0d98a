import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import { redactUrl, requestSerializer } from '../src/index.js'

test('redactUrl hides token parameters', () => {
  assert.equal(redactUrl('/hub?access_token=abc.def&x=1'), '/hub?access_token=[REDACTED]&x=1')
  assert.equal(redactUrl('/hub?x=1&id=tok.sig'), '/hub?x=1&id=[REDACTED]')
  assert.equal(redactUrl('/hub?ID=tok&Access_Token=abc'), '/hub?ID=[REDACTED]&Access_Token=[REDACTED]')
  assert.equal(redactUrl('/hub?identity=keep'), '/hub?identity=keep')
  assert.equal(redactUrl('/hub'), '/hub')
})

test('requestSerializer keeps tokens out of logs', async (t) => {
  const lines: string[] = []
  const app = Fastify({
    logger: { serializers: { req: requestSerializer }, stream: { write: (line: string) => { lines.push(line) } } }
  })
  t.after(() => app.close())
  app.get('/hub', async () => 'ok')

  await app.inject({ url: '/hub?access_token=top-secret-token&id=also-secret' })
  const incoming = lines.map((line) => JSON.parse(line)).find((entry) => entry.msg === 'incoming request')
  assert.equal(incoming.req.url, '/hub?access_token=[REDACTED]&id=[REDACTED]')
  assert.equal(incoming.req.method, 'GET')
  assert.ok(!lines.some((line) => line.includes('top-secret-token')))
  assert.ok(!lines.some((line) => line.includes('also-secret')))
})
