import assert from 'node:assert/strict'
import { once } from 'node:events'
import { get } from 'node:http'
import { test } from 'node:test'
import { baseUrl, startApp, startRedis } from './helpers.js'

/** The body of `GET /healthz`. */
interface HealthBody {
  status: string
  instanceId: string
  transport: string
  redisConnected: boolean
  backplane: { state: string, healthy: boolean, subscribedChannels: number }
}

test('healthz without Redis reports in-process', async (t) => {
  const app = await startApp(t, { instanceId: 'solo' })

  const response = await fetch(`${baseUrl(app)}/healthz`)
  assert.equal(response.status, 200)
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/)
  const body = await response.json() as HealthBody
  assert.equal(body.status, 'ok')
  assert.equal(body.instanceId, 'solo')
  assert.equal(body.transport, 'in-process')
  assert.equal(body.redisConnected, false)
  assert.equal(body.backplane.state, 'connected')
})

test('healthz with Redis reports an outage', { timeout: 60_000 }, async (t) => {
  const redis = await startRedis(t)
  const app = await startApp(t, { redisUrl: redis.url, instanceId: 'A' })

  const healthy = await fetch(`${baseUrl(app)}/healthz`)
  assert.equal(healthy.status, 200)
  const healthyBody = await healthy.json() as HealthBody
  assert.equal(healthyBody.status, 'ok')
  assert.equal(healthyBody.redisConnected, true)
  assert.equal(healthyBody.backplane.healthy, true)
  assert.ok(healthyBody.backplane.subscribedChannels >= 2, 'the hub and instance channels')

  const closed = once(app.redis, 'close')
  await redis.stop()
  await closed
  // A load balancer gets 503 while this instance cannot reach the others.
  const degraded = await fetch(`${baseUrl(app)}/healthz`)
  assert.equal(degraded.status, 503)
  const degradedBody = await degraded.json() as HealthBody
  assert.equal(degradedBody.status, 'degraded')
  assert.equal(degradedBody.redisConnected, false)
  assert.equal(degradedBody.backplane.state, 'reconnecting')
  assert.ok(!JSON.stringify(degradedBody).includes(redis.url), 'no Redis URL in the health output')
})

test('page, script and bundle are served', async (t) => {
  const app = await startApp(t)
  const base = baseUrl(app)

  const page = await fetch(`${base}/`)
  assert.equal(page.status, 200)
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/)
  const html = await page.text()
  assert.match(html, /<script src="\/vendor\/signalr\/signalr\.min\.js" defer><\/script>/)
  assert.match(html, /<script src="\/app\.js" defer><\/script>/)

  for (const path of ['/app.js', '/vendor/signalr/signalr.min.js']) {
    const script = await fetch(base + path)
    assert.equal(script.status, 200, path)
    assert.match(script.headers.get('content-type') ?? '', /javascript/, path)
  }
  const bundle = await (await fetch(`${base}/vendor/signalr/signalr.min.js`)).text()
  assert.match(bundle, /HubConnectionBuilder/, 'the bundle is the SignalR client')

  const styles = await fetch(`${base}/styles.css`)
  assert.equal(styles.status, 200)
  assert.match(styles.headers.get('content-type') ?? '', /^text\/css/)

  // Static files are revalidated with an ETag, so a deploy never leaves a stale script behind.
  // node:http, because fetch adds "cache-control: no-cache" to conditional requests.
  const etag = page.headers.get('etag')
  assert.ok(etag !== null, 'the page has an ETag')
  const revalidated = await new Promise<number | undefined>((resolve, reject) => {
    get(`${base}/`, { headers: { 'if-none-match': etag } }, (response) => {
      response.resume()
      resolve(response.statusCode)
    }).on('error', reject)
  })
  assert.equal(revalidated, 304)
})

test('responses carry security headers', async (t) => {
  const app = await startApp(t)
  for (const path of ['/', '/app.js', '/healthz']) {
    const response = await fetch(baseUrl(app) + path)
    assert.equal(response.headers.get('content-security-policy'),
      "default-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'", path)
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff', path)
    assert.equal(response.headers.get('referrer-policy'), 'no-referrer', path)
  }
})

test('instance route and plain hub request', async (t) => {
  const app = await startApp(t, { instanceId: 'web.7' })

  const instance = await fetch(`${baseUrl(app)}/api/instance`)
  assert.equal(instance.status, 200)
  assert.deepEqual(await instance.json(), { instanceId: 'web.7' })

  // The hub accepts WebSocket upgrades only.
  const hub = await fetch(`${baseUrl(app)}/noteHub`)
  assert.equal(hub.status, 400)
})
