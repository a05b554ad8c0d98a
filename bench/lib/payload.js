// The 64-byte ASCII payload that every system under test broadcasts. Fixed positions let the
// load generator read the step and the send time without parsing JSON:
//
//   SSSSS.QQQQQQQQQQ.TTTTTTTTTTTTTTTT.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
//   step  sequence   send time (µs)   filler
//
// The send time comes from process.hrtime(), which reads CLOCK_MONOTONIC. That clock is the
// same for every process on one machine, so a client subtracts it from its own reading.

export const PAYLOAD_BYTES = 64

const STEP_DIGITS = 5
const SEQUENCE_DIGITS = 10
const TIME_DIGITS = 16
const SEQUENCE_OFFSET = STEP_DIGITS + 1
const TIME_OFFSET = SEQUENCE_OFFSET + SEQUENCE_DIGITS + 1
const FILLER = '.'.padEnd(PAYLOAD_BYTES - TIME_OFFSET - TIME_DIGITS, 'x')

/** The largest step number a payload can carry. */
export const MAXIMUM_STEP = 10 ** STEP_DIGITS - 1

/** Returns the current CLOCK_MONOTONIC reading in microseconds. */
export function nowMicroseconds () {
  return Number(process.hrtime.bigint() / 1000n)
}

export function encodePayload (step, sequence, sentMicroseconds) {
  return String(step).padStart(STEP_DIGITS, '0') + '.' +
    String(sequence).padStart(SEQUENCE_DIGITS, '0') + '.' +
    String(sentMicroseconds).padStart(TIME_DIGITS, '0') + FILLER
}

/** Reads the step of a payload that starts at `offset` in a Buffer or a string. */
export function readStep (source, offset) {
  return readDigits(source, offset, STEP_DIGITS)
}

/** Reads the send time, in microseconds, of a payload that starts at `offset`. */
export function readSentMicroseconds (source, offset) {
  return readDigits(source, offset + TIME_OFFSET, TIME_DIGITS)
}

/** Parses `length` ASCII digits; returns -1 if any of them is not a digit. */
function readDigits (source, offset, length) {
  let value = 0
  const isString = typeof source === 'string'
  for (let index = offset; index < offset + length; index++) {
    const digit = (isString ? source.charCodeAt(index) : source[index]) - 48
    if (!(digit >= 0 && digit <= 9)) return -1
    value = value * 10 + digit
  }
  return value
}
