import { once } from 'node:events'
import { decode, encode } from '@msgpack/msgpack'
import type { FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import type { CloseEvent } from './raw-hub.js'
import { RS } from './raw-hub.js'
import { baseUrl } from './signalr.js'

/** The MessagePack protocol handshake request, separator included. */
export const MESSAGEPACK_HANDSHAKE = `{"protocol":"messagepack","version":1}${RS}`

/** Encodes `length` as the protocol's varint: 7 bits per byte, least significant group first. */
export function encodeVarint (length: number): Buffer {
  const bytes: number[] = []
  do {
    let byte = length % 128
    length = Math.floor(length / 128)
    if (length > 0) byte |= 0x80
    bytes.push(byte)
  } while (length > 0)
  return Buffer.from(bytes)
}

/** Encodes one hub message, a MessagePack array, with its varint length prefix. */
export function frameMessage (message: unknown[]): Buffer {
  const body = encode(message)
  return Buffer.concat([encodeVarint(body.length), body])
}

/** One WebSocket frame the server sent. */
export interface ReceivedFrame {
  binary: boolean
  data: Buffer
}

/**
 * A MessagePack hub client on a bare `ws` socket. It reads the JSON handshake response up to
 * 0x1E, then splits the rest of the byte stream into varint-prefixed MessagePack messages,
 * whatever the frame boundaries.
 */
export class RawMessagePackClient {
  readonly socket: WebSocket
  /** Every frame received, in arrival order. */
  readonly frames: ReceivedFrame[] = []
  /** The handshake response without its separator, once it arrived. */
  handshakeResponse: string | undefined
  /** Every decoded hub message, in arrival order. */
  readonly messages: unknown[][] = []
  /** Settles when the socket has closed, with the close code the client saw. */
  readonly closed: Promise<CloseEvent>
  #pending = Buffer.alloc(0)
  #cursor = 0
  #waiters: Array<() => void> = []

  private constructor (socket: WebSocket) {
    this.socket = socket
    this.closed = new Promise((resolve) => {
      socket.once('close', (code, reason) => {
        resolve({ code, reason: reason.toString('utf8') })
        this.#wake()
      })
    })
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      this.frames.push({ binary: isBinary, data })
      this.#receive(data)
    })
  }

  /** Opens a WebSocket to `path` on `app` without sending anything. */
  static async connect (app: FastifyInstance, path = '/testHub'): Promise<RawMessagePackClient> {
    const socket = new WebSocket(baseUrl(app).replace(/^http/, 'ws') + path)
    const client = new RawMessagePackClient(socket)
    await once(socket, 'open')
    return client
  }

  /** Opens a WebSocket, sends the handshake in a text frame and waits for the response `{}`. */
  static async connectAndHandshake (app: FastifyInstance, path = '/testHub'): Promise<RawMessagePackClient> {
    const client = await RawMessagePackClient.connect(app, path)
    client.send(MESSAGEPACK_HANDSHAKE)
    const response = await client.waitForHandshake()
    if (response !== '{}') throw new Error(`expected the handshake response {}, got ${response}`)
    return client
  }

  /** Sends one WebSocket frame: a text frame for a string, a binary frame for a Buffer. */
  send (data: string | Buffer): void {
    this.socket.send(data, { binary: Buffer.isBuffer(data) })
  }

  /** Sends hub messages, each with its length prefix, in one binary frame. */
  sendMessages (...messages: unknown[][]): void {
    this.send(Buffer.concat(messages.map(frameMessage)))
  }

  /** Resolves with the handshake response. Rejects if the socket closes first or after `timeout` ms. */
  async waitForHandshake (timeout = 10_000): Promise<string> {
    await this.#waitUntil(() => this.handshakeResponse !== undefined, 'the handshake response', timeout)
    return this.handshakeResponse!
  }

  /** Resolves with the next hub message not returned yet. Rejects if the socket closes first or after `timeout` ms. */
  async nextMessage (timeout = 10_000): Promise<unknown[]> {
    await this.#waitUntil(() => this.#cursor < this.messages.length, `message ${this.#cursor + 1}`, timeout)
    return this.messages[this.#cursor++]!
  }

  /** Closes the socket unless it has closed already, and waits for the close. */
  async close (): Promise<void> {
    if (this.socket.readyState !== WebSocket.CLOSED) this.socket.close()
    await this.closed
  }

  #receive (data: Buffer): void {
    let buffer = Buffer.concat([this.#pending, data])
    if (this.handshakeResponse === undefined) {
      const end = buffer.indexOf(0x1e)
      if (end === -1) {
        this.#pending = buffer
        return
      }
      this.handshakeResponse = buffer.toString('utf8', 0, end)
      buffer = buffer.subarray(end + 1)
    }

    for (;;) {
      const prefix = readVarint(buffer)
      if (prefix === undefined || prefix.length + prefix.value > buffer.length) break
      this.messages.push(decode(buffer.subarray(prefix.length, prefix.length + prefix.value)) as unknown[])
      buffer = buffer.subarray(prefix.length + prefix.value)
    }
    this.#pending = buffer
    this.#wake()
  }

  async #waitUntil (ready: () => boolean, what: string, timeout: number): Promise<void> {
    const deadline = Date.now() + timeout
    while (!ready()) {
      if (this.socket.readyState === WebSocket.CLOSED) {
        throw new Error(`the socket closed before ${what} arrived; received ${JSON.stringify(this.messages)}`)
      }
      const remaining = deadline - Date.now()
      if (remaining <= 0) throw new Error(`no ${what} within ${timeout} ms; received ${JSON.stringify(this.messages)}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining)
        this.#waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  #wake (): void {
    for (const waiter of this.#waiters.splice(0)) waiter()
  }
}

function readVarint (buffer: Buffer): { value: number, length: number } | undefined {
  let value = 0
  for (let index = 0; index < buffer.length && index < 5; index++) {
    const byte = buffer[index]!
    value += (byte & 0x7f) * 2 ** (7 * index)
    if ((byte & 0x80) === 0) return { value, length: index + 1 }
  }
  return undefined
}
