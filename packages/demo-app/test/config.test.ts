import assert from 'node:assert/strict'
import { test } from 'node:test'
import { readServerConfig } from '../src/config.js'

test('config defaults without environment', () => {
  assert.deepEqual(readServerConfig({}, 'laptop'), {
    port: 3000,
    host: '0.0.0.0',
    redisUrl: undefined,
    redisRejectUnauthorized: false,
    instanceId: 'laptop:3000',
    negotiateSecret: undefined,
    logLevel: 'info',
    behindProxy: false
  })
})

test('config reads BACKPLANE_SECRET', () => {
  const config = readServerConfig({ BACKPLANE_SECRET: ' 0123456789abcdef0123 ' }, 'laptop')
  assert.equal(config.negotiateSecret, '0123456789abcdef0123')
})

test('config on a Heroku dyno', () => {
  const config = readServerConfig({
    PORT: '41234',
    DYNO: 'web.2',
    REDIS_URL: 'rediss://:secret@example.invalid:6380'
  }, 'dyno-host')
  assert.equal(config.port, 41234)
  assert.equal(config.instanceId, 'web.2')
  assert.equal(config.redisUrl, 'rediss://:secret@example.invalid:6380')
  assert.equal(config.redisRejectUnauthorized, false)
  assert.equal(config.behindProxy, true)
})

test('config falls back to REDIS_TLS_URL', () => {
  assert.equal(readServerConfig({ REDIS_TLS_URL: 'rediss://tls.invalid:6380' }).redisUrl, 'rediss://tls.invalid:6380')
  assert.equal(readServerConfig({ REDIS_URL: '', REDIS_TLS_URL: 'rediss://tls.invalid:6380' }).redisUrl, 'rediss://tls.invalid:6380')
  assert.equal(readServerConfig({ REDIS_URL: 'redis://plain.invalid', REDIS_TLS_URL: 'rediss://tls.invalid:6380' }).redisUrl, 'redis://plain.invalid')
})

test('config reads certificate verification flag', () => {
  for (const value of ['1', 'true', 'TRUE']) {
    assert.equal(readServerConfig({ REDIS_TLS_REJECT_UNAUTHORIZED: value }).redisRejectUnauthorized, true, value)
  }
  for (const value of ['0', 'false', '']) {
    assert.equal(readServerConfig({ REDIS_TLS_REJECT_UNAUTHORIZED: value }).redisRejectUnauthorized, false, value)
  }
  assert.throws(() => readServerConfig({ REDIS_TLS_REJECT_UNAUTHORIZED: 'yes' }), /Invalid REDIS_TLS_REJECT_UNAUTHORIZED "yes": expected 1, true, 0 or false\./)
})

test('config rejects invalid values', () => {
  for (const port of ['abc', '-1', '65536', '3.5']) {
    assert.throws(() => readServerConfig({ PORT: port }), new RegExp(`Invalid PORT "${port.replace('.', '\\.')}"`), port)
  }
  assert.throws(() => readServerConfig({ LOG_LEVEL: 'verbose' }), /Invalid LOG_LEVEL "verbose"/)
  assert.equal(readServerConfig({ PORT: '0' }).port, 0)
  assert.equal(readServerConfig({ HOST: '127.0.0.1' }).host, '127.0.0.1')
})
