const TEXT = 0x1
const BINARY = 0x2
const FIN = 0x80

/**
 * Maximum payload bytes that `joinWebSocketFrames()` puts into one merged frame. Some clients
 * limit the size of one WebSocket message (URLSessionWebSocketTask, under the Swift client, has
 * a `maximumMessageSize`), and a client reads no record of a message before all of it arrived.
 */
export const MAXIMUM_MERGED_PAYLOAD = 64 * 1024

/**
 * Encodes `payload` as one complete, unmasked, uncompressed WebSocket data frame (RFC 6455,
 * section 5.2), as a server sends it. A broadcast is framed once and the same bytes are written
 * to every socket, instead of each socket framing its own copy.
 */
export function encodeWebSocketFrame (payload: Buffer, binary: boolean): Buffer {
  const frame = Buffer.allocUnsafe(headerLengthFor(payload.length) + payload.length)
  payload.copy(frame, writeHeader(frame, 0, payload.length, binary))
  return frame
}

/**
 * Joins frames that `encodeWebSocketFrame()` built, all of one type, such as what one
 * connection is sent in one pass, into as few frames as it can. Consecutive payloads share a
 * frame while together they stay within MAXIMUM_MERGED_PAYLOAD bytes. Both hub protocols
 * delimit their records, JSON with the record separator and MessagePack with a length prefix,
 * and SignalR clients read every record of a WebSocket message. ASP.NET Core SignalR also sends
 * what it has buffered as one message. The client then handles one message event instead of one
 * per record. One frame is returned as it is.
 */
export function joinWebSocketFrames (frames: readonly Buffer[]): Buffer {
  if (frames.length === 1) return frames[0]!

  // The runs of consecutive frames that share one frame: [first index, end index, payload bytes].
  const runs: Array<[number, number, number]> = []
  let total = 0
  for (let start = 0; start < frames.length;) {
    let payloadBytes = payloadLengthOf(frames[start]!)
    let end = start + 1
    for (; end < frames.length; end++) {
      const next = payloadLengthOf(frames[end]!)
      if (payloadBytes + next > MAXIMUM_MERGED_PAYLOAD) break
      payloadBytes += next
    }
    runs.push([start, end, payloadBytes])
    total += headerLengthFor(payloadBytes) + payloadBytes
    start = end
  }

  const joined = Buffer.allocUnsafe(total)
  const binary = (frames[0]![0]! & 0x0f) === BINARY
  let offset = 0
  for (const [start, end, payloadBytes] of runs) {
    offset += writeHeader(joined, offset, payloadBytes, binary)
    for (let index = start; index < end; index++) {
      const frame = frames[index]!
      offset += frame.copy(joined, offset, headerLengthOf(frame))
    }
  }
  return joined
}

/** Returns the header length of a frame whose payload is `payloadLength` bytes. */
function headerLengthFor (payloadLength: number): number {
  if (payloadLength < 126) return 2
  return payloadLength < 65_536 ? 4 : 10
}

/** Reads the header length of a frame that this module built from its length byte. */
function headerLengthOf (frame: Buffer): number {
  const length = frame[1]! & 0x7f
  if (length < 126) return 2
  return length === 126 ? 4 : 10
}

function payloadLengthOf (frame: Buffer): number {
  return frame.length - headerLengthOf(frame)
}

/**
 * Writes the header of a final, unmasked data frame into `target` at `offset`, and returns the
 * header's length.
 */
function writeHeader (target: Buffer, offset: number, payloadLength: number, binary: boolean): number {
  target[offset] = FIN | (binary ? BINARY : TEXT)
  if (payloadLength < 126) {
    target[offset + 1] = payloadLength
    return 2
  }
  if (payloadLength < 65_536) {
    target[offset + 1] = 126
    target.writeUInt16BE(payloadLength, offset + 2)
    return 4
  }
  target[offset + 1] = 127
  target.writeUInt32BE(Math.floor(payloadLength / 2 ** 32), offset + 2)
  target.writeUInt32BE(payloadLength >>> 0, offset + 6)
  return 10
}
