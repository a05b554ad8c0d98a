import assert from 'node:assert/strict'
import { test } from 'node:test'
import { describeKind, describeValue } from '../src/describe-value.js'
import { jsonHubProtocol } from '../src/protocol/json.js'

test('app values shown as written', () => {
  assert.equal(describeValue(42), '42')
  assert.equal(describeValue('5'), '"5"')
  assert.equal(describeValue(null), 'null')
  assert.equal(describeValue(undefined), 'undefined')
  assert.equal(describeValue(false), 'false')
  assert.equal(describeValue(['a']), 'an array')
  assert.equal(describeValue({ a: 1 }), 'an object')
  assert.equal(describeValue(() => {}), 'a function')
  assert.equal(describeValue(new Uint8Array(2)), 'binary data')
  assert.equal(describeValue('x'.repeat(100)), JSON.stringify('x'.repeat(64) + '…'))
})

test('client values shown by kind', () => {
  assert.equal(describeKind('a token'), 'a string')
  assert.equal(describeKind(7), 'a number')
  assert.equal(describeKind(null), 'null')
  assert.equal(describeKind([1]), 'an array')
  assert.equal(describeKind(new Uint8Array(2)), 'binary data')
  assert.equal(describeKind({}), 'an object')
})

test('protocol error omits client value', () => {
  const record = JSON.stringify({ type: 7, allowReconnect: 'secret-value' }) + '\u001e'
  const err = captureError(() => jsonHubProtocol.createReader(1024).read(Buffer.from(record)))
  assert.match(err.message, /got a string/)
  assert.doesNotMatch(err.message, /secret-value/)
})

function captureError (run: () => unknown): Error {
  try {
    run()
  } catch (err) {
    return err as Error
  }
  assert.fail('expected an error')
}
