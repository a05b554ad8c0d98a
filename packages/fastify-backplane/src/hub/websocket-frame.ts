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
  payload.copy(frame, writeHeader(frame, payload.length, binary))
  return frame
}

/**
 * Joins frames that `encodeWebSocketFrame()` built, all of one type, such as what one
 * connection is sent in one pass, into as few frames as it can: consecutive payloads share a
 * frame while together they stay within MAXIMUM_MERGED_PAYLOAD bytes. Both hub protocols
 * delimit their records, JSON with the record separator and MessagePack with a length prefix,
 * and SignalR clients read every record of a WebSocket message. ASP.NET Core SignalR also sends
 * what it has buffered as one message. The client then handles one message event instead of one
 * per record. One frame is returned as it is.
 */
export function joinWebSocketFrames (frames: readonly Buffer[]): Buffer {
  if (frames.length === 1) return frames[0]!
  const parts: Buffer[] = []
  let total = 0
  for (let start = 0; start < frames.length;) {
    let payloadBytes = payloadLengthOf(frames[start]!)
    let end = start + 1
    for (; end < frames.length; end++) {
      const next = payloadLengthOf(frames[end]!)
      if (payloadBytes + next > MAXIMUM_MERGED_PAYLOAD) break
      payloadBytes += next
    }
    const part = end - start === 1 ? frames[start]! : mergeFrames(frames.slice(start, end), payloadBytes)
    parts.push(part)
    total += part.length
    start = end
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, total)
}

/** Builds one frame, of the first frame's type, whose payload is the payloads of `frames` in order. */
function mergeFrames (frames: readonly Buffer[], payloadBytes: number): Buffer {
  const merged = Buffer.allocUnsafe(headerLengthFor(payloadBytes) + payloadBytes)
  let offset = writeHeader(merged, payloadBytes, (frames[0]![0]! & 0x0f) === BINARY)
  for (const frame of frames) offset += frame.copy(merged, offset, headerLengthOf(frame))
  return merged
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
 * Writes the header of a final, unmasked data frame at the start of `frame`, and returns the
 * header's length.
 */
function writeHeader (frame: Buffer, payloadLength: number, binary: boolean): number {
  frame[0] = FIN | (binary ? BINARY : TEXT)
  if (payloadLength < 126) {
    frame[1] = payloadLength
    return 2
  }
  if (payloadLength < 65_536) {
    frame[1] = 126
    frame.writeUInt16BE(payloadLength, 2)
    return 4
  }
  frame[1] = 127
  frame.writeUInt32BE(Math.floor(payloadLength / 2 ** 32), 2)
  frame.writeUInt32BE(payloadLength >>> 0, 6)
  return 10
}
