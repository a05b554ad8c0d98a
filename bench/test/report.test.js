import assert from 'node:assert/strict'
import { test } from 'node:test'
import { failedRatesBelowResult, formatReport } from '../lib/report.js'

/** Builds a ladder step as the runner records it, with only the fields the report reads. */
function step (deliveriesPerSecond, passed, p99 = passed ? 40 : 60) {
  return { deliveriesPerSecond, passed, latencyMs: { p99 }, cpuCores: { generator: 0.5, serverA: 0.2, serverB: 0.2, redis: 0, otherProcesses: 0, stolen: 0 } }
}

/** A ladder at 5,000 clients that passed 100,000/s after failing 10,000 and 40,000/s, because its p99 fell as the rate rose. */
const floorLadder = {
  scenario: 'all',
  fanout: 5000,
  maxDeliveriesPerSecond: 100_000,
  lowestRateTried: 5000,
  steps: [step(10_000, false), step(10_000, false), step(5000, true), step(20_000, true), step(40_000, false), step(40_000, false), step(80_000, true), step(100_000, true), step(160_000, false)],
  atFirstFailure: { deliveriesPerSecond: 160_000, cpuCores: step(0, false).cpuCores }
}

test('failed rates below a result', () => {
  assert.deepEqual(failedRatesBelowResult(floorLadder), [10_000, 40_000])
})

test('retried rate that passed counts as passed', () => {
  const ladder = { ...floorLadder, steps: [step(10_000, false), step(10_000, true), step(100_000, true)] }
  assert.deepEqual(failedRatesBelowResult(ladder), [])
})

test('report lists failed rates below results', () => {
  const report = formatReport({
    systems: {
      'fastify-backplane': { ladders: [{ ...floorLadder, steps: [step(10_000, true), step(100_000, true), step(160_000, false)] }] },
      floor: { ladders: [floorLadder] }
    }
  })
  assert.match(report, /Results above rates that failed on every try:\n\n- floor, all, 5,000 clients: 100,000\/s passed, but 10,000\/s, 40,000\/s failed/)
  assert.doesNotMatch(report, /- fastify-backplane, all/)
})

test('report leaves out the note when none failed below', () => {
  const report = formatReport({
    systems: { 'fastify-backplane': { ladders: [{ ...floorLadder, steps: [step(10_000, true), step(100_000, true), step(160_000, false)] }] } }
  })
  assert.doesNotMatch(report, /Results above rates/)
})
