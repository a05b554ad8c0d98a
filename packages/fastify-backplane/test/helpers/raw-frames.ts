import { once } from 'node:events'
import { createHash, randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import type { Socket } from 'node:net'

/** WebSocket opcodes (RFC 6455, 5.2). */
export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa
} as const

/** The parts of a hand-made frame; anything left out is what a well-behaved client sends. */
export interface FrameParts {
  opcode: number
  payload?: Buffer | string
  /** FIN bit. @default true */
  fin?: boolean
  /** RSV1 to RSV3 as a 3-bit number, RSV1 being 4. @default 0 */
  rsv?: number
  /** Whether the payload is masked, as a client must. @default true */
  masked?: boolean
}

/** Encodes one WebSocket frame, including invalid ones: the fields are not checked. */
export function encodeFrame ({ opcode, payload = Buffer.alloc(0), fin = true, rsv = 0, masked = true }: FrameParts): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload
  const first = (fin ? 0x80 : 0) | ((rsv & 0x7) << 4) | (opcode & 0x0f)
  let header: Buffer
  if (data.length < 126) {
    header = Buffer.from([first, (masked ? 0x80 : 0) | data.length])
  } else if (data.length < 65536) {
    header = Buffer.alloc(4)
    header[0] = first
    header[1] = (masked ? 0x80 : 0) | 126
    header.writeUInt16BE(data.length, 2)
  } else {
    header = Buffer.alloc(10)
    header[0] = first
    header[1] = (masked ? 0x80 : 0) | 127
    header.writeBigUInt64BE(BigInt(data.length), 2)
  }
  if (!masked) return Buffer.concat([header, data])

  const mask = randomBytes(4)
  const body = Buffer.from(data)
  for (let index = 0; index < body.length; index++) body[index]! ^= mask[index % 4]!
  return Buffer.concat([header, mask, body])
}

/** A frame the server sent. Server frames are never masked. */
export interface ServerFrame {
  opcode: number
  payload: Buffer
}

/**
 * A WebSocket client on a bare TCP socket, for tests that send frames `ws` would refuse to
 * build. It performs the upgrade by hand and parses the server's frames.
 */
export class RawFrameClient {
  readonly socket: Socket
  /** Every data frame's payload, and control frames other than Close, in arrival order. */
  readonly frames: ServerFrame[] = []
  /** Settles when the TCP connection ends, with the server's close code, if it sent one. */
  readonly closed: Promise<{ code: number | undefined, reason: string }>
  #buffer = Buffer.alloc(0)
  #closeFrame: { code: number | undefined, reason: string } | undefined
  #waiters: Array<() => void> = []

  private constructor (socket: Socket) {
    this.socket = socket
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        resolve(this.#closeFrame ?? { code: undefined, reason: '' })
        this.#wake()
      })
    })
    socket.on('error', () => {})
  }

  /** Connects to `port` on 127.0.0.1 and upgrades `path`. Rejects unless the server responds with 101. */
  static async open (port: number, path: string, headers: Record<string, string> = {}): Promise<RawFrameClient> {
    const socket = connect(port, '127.0.0.1')
    await once(socket, 'connect')
    const client = new RawFrameClient(socket)
    const key = randomBytes(16).toString('base64')
    const lines = [
      `GET ${path} HTTP/1.1`,
      `Host: 127.0.0.1:${port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${key}`,
      'Sec-WebSocket-Version: 13',
      ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)
    ]
    socket.write(lines.join('\r\n') + '\r\n\r\n')
    await client.#readUpgradeResponse(key)
    socket.on('data', (chunk: Buffer) => client.#receive(chunk))
    return client
  }

  /** Writes raw bytes, such as frames from `encodeFrame`. */
  write (bytes: Buffer): void {
    this.socket.write(bytes)
  }

  /** Writes one frame. */
  send (parts: FrameParts): void {
    this.write(encodeFrame(parts))
  }

  /** Resolves with every frame received so far, once `count` have arrived. */
  async waitForFrames (count: number, timeout = 5000): Promise<ServerFrame[]> {
    const deadline = Date.now() + timeout
    while (this.frames.length < count) {
      if (this.socket.destroyed) throw new Error(`the socket closed after ${this.frames.length} of ${count} frames`)
      const remaining = deadline - Date.now()
      if (remaining <= 0) throw new Error(`received ${this.frames.length} of ${count} frames within ${timeout} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining)
        this.#waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    return this.frames
  }

  /** Ends the TCP connection at once. */
  destroy (): void {
    this.socket.destroy()
  }

  async #readUpgradeResponse (key: string): Promise<void> {
    let response = Buffer.alloc(0)
    while (!response.includes('\r\n\r\n')) {
      const [chunk] = await once(this.socket, 'data') as [Buffer]
      response = Buffer.concat([response, chunk])
    }
    const end = response.indexOf('\r\n\r\n')
    const head = response.toString('latin1', 0, end)
    if (!head.startsWith('HTTP/1.1 101')) throw new Error(`the server rejected the upgrade: ${head.split('\r\n')[0]}`)
    const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
    if (!head.includes(`Sec-WebSocket-Accept: ${accept}`)) throw new Error('the upgrade response has a wrong Sec-WebSocket-Accept')
    this.#receive(response.subarray(end + 4))
  }

  #receive (chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk])
    for (;;) {
      const frame = readServerFrame(this.#buffer)
      if (frame === undefined) break
      this.#buffer = this.#buffer.subarray(frame.length)
      if (frame.opcode === Opcode.Close) {
        const payload = frame.payload
        this.#closeFrame = {
          code: payload.length >= 2 ? payload.readUInt16BE(0) : undefined,
          reason: payload.subarray(2).toString('utf8')
        }
      } else {
        this.frames.push({ opcode: frame.opcode, payload: frame.payload })
      }
    }
    this.#wake()
  }

  #wake (): void {
    for (const waiter of this.#waiters.splice(0)) waiter()
  }
}

/** Splits bytes the server wrote into its frames, and throws if the last frame is incomplete. */
export function splitServerFrames (bytes: Buffer): ServerFrame[] {
  const frames: ServerFrame[] = []
  for (let rest = bytes; rest.length > 0;) {
    const frame = readServerFrame(rest)
    if (frame === undefined) throw new Error(`incomplete WebSocket frame in ${bytes.length} bytes`)
    frames.push({ opcode: frame.opcode, payload: frame.payload })
    rest = rest.subarray(frame.length)
  }
  return frames
}

function readServerFrame (buffer: Buffer): { opcode: number, payload: Buffer, length: number } | undefined {
  if (buffer.length < 2) return undefined
  const opcode = buffer[0]! & 0x0f
  let length = buffer[1]! & 0x7f
  let offset = 2
  if (length === 126) {
    if (buffer.length < 4) return undefined
    length = buffer.readUInt16BE(2)
    offset = 4
  } else if (length === 127) {
    if (buffer.length < 10) return undefined
    length = Number(buffer.readBigUInt64BE(2))
    offset = 10
  }
  if (buffer.length < offset + length) return undefined
  return { opcode, payload: buffer.subarray(offset, offset + length), length: offset + length }
}
