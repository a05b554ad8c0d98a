import assert from 'node:assert/strict'
import { test } from 'node:test'
import { encodeWebSocketFrame, joinWebSocketFrames, MAXIMUM_MERGED_PAYLOAD } from '../src/hub/websocket-frame.js'
import { Opcode, splitServerFrames } from './helpers/raw-frames.js'

/** Lists the opcode and payload length of each frame in `bytes`. */
function describeFrames (bytes: Buffer): Array<[number, number]> {
  return splitServerFrames(bytes).map(({ opcode, payload }) => [opcode, payload.length])
}

test('one frame is returned as it is', () => {
  const frame = encodeWebSocketFrame(Buffer.from('only'), false)
  assert.equal(joinWebSocketFrames([frame]), frame)
})

test('frames join into one message of their type', () => {
  const text = joinWebSocketFrames(['a\u001e', 'bc\u001e'].map((record) => encodeWebSocketFrame(Buffer.from(record), false)))
  assert.deepEqual(splitServerFrames(text), [{ opcode: Opcode.Text, payload: Buffer.from('a\u001ebc\u001e') }])

  const binary = joinWebSocketFrames([Buffer.from([1, 0xc0]), Buffer.from([1, 0xc3])].map((record) => encodeWebSocketFrame(record, true)))
  assert.deepEqual(splitServerFrames(binary), [{ opcode: Opcode.Binary, payload: Buffer.from([1, 0xc0, 1, 0xc3]) }])
})

test('merged payloads stay within the limit', () => {
  const third = Math.floor(MAXIMUM_MERGED_PAYLOAD / 3)
  const frames = [third, third, third, 10].map((length) => encodeWebSocketFrame(Buffer.alloc(length, 0x61), false))
  assert.deepEqual(describeFrames(joinWebSocketFrames(frames)), [[Opcode.Text, 3 * third], [Opcode.Text, 10]])
})

test('oversized frame stays alone in order', () => {
  const payloads = [Buffer.from('first'), Buffer.alloc(MAXIMUM_MERGED_PAYLOAD + 1, 0x62), Buffer.from('after'), Buffer.from('last')]
  const joined = splitServerFrames(joinWebSocketFrames(payloads.map((payload) => encodeWebSocketFrame(payload, false))))
  assert.deepEqual(joined.map(({ payload }) => payload.length), [5, MAXIMUM_MERGED_PAYLOAD + 1, 9])
  assert.deepEqual(Buffer.concat(joined.map(({ payload }) => payload)), Buffer.concat(payloads))
})

test('every header length merges', () => {
  // Payloads of 125 and 126 bytes take 2- and 4-byte headers, and a 70,000-byte payload a 10-byte one.
  const payloads = [125, 126, 40_000].map((length, index) => Buffer.alloc(length, 0x30 + index))
  const joined = splitServerFrames(joinWebSocketFrames(payloads.map((payload) => encodeWebSocketFrame(payload, true))))
  assert.deepEqual(joined.map(({ opcode, payload }) => [opcode, payload.length]), [[Opcode.Binary, 125 + 126 + 40_000]])
  assert.deepEqual(joined[0]!.payload, Buffer.concat(payloads))

  const large = Buffer.alloc(70_000, 0x7a)
  const split = splitServerFrames(joinWebSocketFrames([encodeWebSocketFrame(large, false), encodeWebSocketFrame(Buffer.from('x'), false)]))
  assert.deepEqual(split.map(({ payload }) => payload.length), [70_000, 1])
})
