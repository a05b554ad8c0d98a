import { once } from 'node:events'
import type { FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import { baseUrl } from './signalr.js'

/** The SignalR record separator that ends every handshake and JSON hub message. */
export const RS = '\u001e'

/** The JSON protocol handshake request, separator included. */
export const JSON_HANDSHAKE = `{"protocol":"json","version":1}${RS}`

export interface CloseEvent {
  code: number
  reason: string
}

/**
 * A hub client on a bare `ws` socket, for tests that control every byte on the wire. It splits
 * what the server sends into records at 0x1E, whatever the frame boundaries.
 */
export class RawHubClient {
  readonly socket: WebSocket
  /** Every complete record received, without its separator, in arrival order. */
  readonly records: string[] = []
  /** Settles when the socket has closed, with the close code the client saw. */
  readonly closed: Promise<CloseEvent>
  /** The number of WebSocket messages received. */
  messagesReceived = 0
  /** How many WebSocket messages arrived as binary frames, which the JSON protocol never uses. */
  binaryFrames = 0
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
      this.messagesReceived++
      if (isBinary) this.binaryFrames++
      this.#receive(data)
    })
  }

  /** Opens a WebSocket to `path` on `app` without sending anything. */
  static async connect (app: FastifyInstance, path = '/testHub'): Promise<RawHubClient> {
    const socket = new WebSocket(baseUrl(app).replace(/^http/, 'ws') + path)
    const client = new RawHubClient(socket)
    await once(socket, 'open')
    return client
  }

  /** Opens a WebSocket to a full `ws://` URL with extra request headers, without sending anything. */
  static async open (url: string, headers: Record<string, string> = {}): Promise<RawHubClient> {
    const socket = new WebSocket(url, { headers })
    const client = new RawHubClient(socket)
    await once(socket, 'open')
    return client
  }

  /** Opens a WebSocket and completes the JSON handshake. */
  static async connectAndHandshake (app: FastifyInstance, path = '/testHub'): Promise<RawHubClient> {
    const client = await RawHubClient.connect(app, path)
    client.send(JSON_HANDSHAKE)
    const response = await client.nextRecord()
    if (response !== '{}') throw new Error(`expected the handshake response {}, got ${response}`)
    return client
  }

  /** Sends one WebSocket frame: a text frame for a string, a binary frame for a Buffer. */
  send (data: string | Buffer): void {
    this.socket.send(data, { binary: Buffer.isBuffer(data) })
  }

  /** Sends hub messages, each JSON-encoded and ended by 0x1E, in one frame. */
  sendMessages (...messages: object[]): void {
    this.send(messages.map((message) => JSON.stringify(message) + RS).join(''))
  }

  /** Resolves with the next record not returned yet. Rejects if the socket closes first or after `timeout` ms. */
  async nextRecord (timeout = 10_000): Promise<string> {
    const deadline = Date.now() + timeout
    while (this.#cursor >= this.records.length) {
      if (this.socket.readyState === WebSocket.CLOSED) {
        throw new Error(`the socket closed before record ${this.#cursor + 1} arrived; received ${JSON.stringify(this.records)}`)
      }
      const remaining = deadline - Date.now()
      if (remaining <= 0) {
        throw new Error(`no record ${this.#cursor + 1} within ${timeout} ms; received ${JSON.stringify(this.records)}`)
      }
      await this.#waitForData(remaining)
    }
    return this.records[this.#cursor++]!
  }

  /** Resolves with the next record, parsed as JSON. */
  async nextMessage (timeout?: number): Promise<Record<string, unknown>> {
    return JSON.parse(await this.nextRecord(timeout)) as Record<string, unknown>
  }

  /** Closes the socket unless it has closed already, and waits for the close. */
  async close (): Promise<void> {
    if (this.socket.readyState !== WebSocket.CLOSED) this.socket.close()
    await this.closed
  }

  #receive (data: Buffer): void {
    let buffer = Buffer.concat([this.#pending, data])
    let end = buffer.indexOf(0x1e)
    while (end !== -1) {
      this.records.push(buffer.toString('utf8', 0, end))
      buffer = buffer.subarray(end + 1)
      end = buffer.indexOf(0x1e)
    }
    this.#pending = buffer
    this.#wake()
  }

  #wake (): void {
    for (const waiter of this.#waiters.splice(0)) waiter()
  }

  #waitForData (timeout: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeout)
      this.#waiters.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }
}
