const TEXT = 0x1
const BINARY = 0x2
const FIN = 0x80

/**
 * Encodes `payload` as one complete, unmasked, uncompressed WebSocket data frame (RFC 6455,
 * section 5.2), as a server sends it. A broadcast is framed once and the same bytes are written
 * to every socket, instead of each socket framing its own copy.
 */
export function encodeWebSocketFrame (payload: Buffer, binary: boolean): Buffer {
  const length = payload.length
  let headerLength = 10
  if (length < 126) headerLength = 2
  else if (length < 65_536) headerLength = 4
  const frame = Buffer.allocUnsafe(headerLength + length)
  frame[0] = FIN | (binary ? BINARY : TEXT)

  if (length < 126) {
    frame[1] = length
  } else if (length < 65_536) {
    frame[1] = 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 127
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2)
    frame.writeUInt32BE(length >>> 0, 6)
  }
  payload.copy(frame, headerLength)
  return frame
}
