import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { Socket } from 'node:net'
import type { RawData, WebSocket } from 'ws'
import {
  ClientDisconnectedError,
  SlowClientError,
  UnsupportedFrameTypeError,
  HandshakeError,
  HandshakeTimeoutError,
  MessageTooLargeError,
  ProtocolError
} from '../errors.js'
import { parseHandshakeRequest, writeHandshakeResponse } from '../protocol/handshake.js'
import { MessageType } from '../protocol/messages.js'
import type { HubMessage, HubMessageReader, HubProtocol } from '../protocol/messages.js'
import { RecordSeparatorSplitter } from '../protocol/record-separator.js'
import { PendingClientResults } from './client-results.js'
import type { Hub } from './hub.js'
import { InvocationRunner } from './invocations.js'
import type { HubConnectionContext } from './options.js'
import { closeFrameFor } from './rejections.js'
import { encodeWebSocketFrame } from './websocket-frame.js'
import * as wire from './wire-errors.js'

/** How long a connection closed for a full send buffer gets to read its Close before it is dropped. */
const OVERFLOW_GRACE_MS = 5000

/** The settled promise that invocations wait for once `onConnected` has run. */
const SETTLED = Promise.resolve()

/** Options of `HubConnection.close()`, which become the protocol's Close message. */
export interface CloseOptions {
  /** The text the client shows; omit it for a normal close. */
  error?: string
  /** Whether a client with automatic reconnect may reconnect. */
  allowReconnect?: boolean
  /** The WebSocket close code. */
  code?: number
  /** The WebSocket close reason, at most 123 bytes; the security checks put their error code here. */
  reason?: string
  /** The error to log and hand to `onDisconnected`. */
  cause?: Error
}

/** The identity that the upgrade request established for a connection. */
export interface ConnectionIdentity {
  /** The id from a negotiated connection token; a random id when negotiation was skipped. */
  connectionId?: string
  /** The user id that the hub's authenticate option returned. */
  userId?: string
}

/**
 * One WebSocket connection to a hub, from handshake to close. Incoming bytes are split into
 * messages regardless of frame boundaries; invocations go to the connection's runner.
 */
export class HubConnection {
  readonly id: string
  readonly userId: string | undefined
  protocol: HubProtocol | undefined
  lastReceivedAt = Date.now()
  /** When the keep-alive check last found that something had been written, in ms since the epoch. */
  lastSentAt = Date.now()
  /**
   * Whether something was written since the keep-alive check last looked. Writes set this flag
   * instead of `lastSentAt`, so that a pass over many sockets reads no clock.
   */
  sentSinceCheck = false

  readonly #hub: Hub
  readonly #socket: WebSocket
  /**
   * The TCP socket under `#socket`, which ws sets before the connection exists and never
   * replaces. Writes go to it directly, so a pass over the sockets does not read `#socket`.
   */
  readonly #raw: Socket | undefined
  /** The id of the upgrade request, which the connection's log lines carry. */
  readonly #requestId: string
  /** The upgrade request, kept only until `onConnected` receives it. */
  #request: FastifyRequest | undefined
  #state: 'handshaking' | 'connected' | 'closing' | 'closed' = 'handshaking'
  // Idle connections are the bulk of a hub's memory, so what only the handshake needs is
  // dropped after it, and the rest is created on first use.
  #handshake: RecordSeparatorSplitter | undefined
  #handshakeTimer: NodeJS.Timeout | undefined
  #reader: HubMessageReader | undefined
  #runner: InvocationRunner | undefined
  /** Settles once onConnected has run; invocations wait for it. Dropped once settled. */
  #established: Promise<void> | undefined
  #clientResults: PendingClientResults | undefined
  #context: HubConnectionContext | undefined
  #log: FastifyBaseLogger | undefined
  #groups: Map<string, Promise<void>> | undefined
  #closeError: Error | undefined
  #closeListeners: Array<() => void> | undefined
  /**
   * The function that gives the socket's place under the hub's connection limits back. It is
   * called once, when the socket closes.
   */
  #releasePlace: (() => void) | undefined

  // The socket listeners are shared by all connections and find theirs through the socket, so
  // that an idle connection carries no closures.
  static readonly #bySocket = new WeakMap<WebSocket, HubConnection>()

  static #onMessage (this: WebSocket, data: RawData, isBinary: boolean): void {
    HubConnection.#bySocket.get(this)!.#receive(toBuffer(data), isBinary)
  }

  static #onClose (this: WebSocket): void {
    HubConnection.#bySocket.get(this)!.#closed()
  }

  static #onError (this: WebSocket, err: Error): void {
    HubConnection.#bySocket.get(this)!.#socketFailed(err)
  }

  constructor (hub: Hub, socket: WebSocket, request: FastifyRequest, identity: ConnectionIdentity, releasePlace?: () => void) {
    this.#hub = hub
    this.#socket = socket
    this.#raw = rawSocket(socket)
    this.#releasePlace = releasePlace
    this.#requestId = request.id
    this.#request = request
    this.id = identity.connectionId ?? hub.issueConnectionId()
    this.userId = identity.userId
    this.#handshake = new RecordSeparatorSplitter(hub.options.maximumReceiveMessageSize)

    HubConnection.#bySocket.set(socket, this)
    socket.on('message', HubConnection.#onMessage)
    socket.on('close', HubConnection.#onClose)
    socket.on('error', HubConnection.#onError)
    this.#handshakeTimer = setTimeout(() => this.#handshakeTimedOut(), hub.options.handshakeTimeout)
  }

  /** The context that hub methods, onConnected and onDisconnected receive. */
  get context (): HubConnectionContext {
    this.#context ??= this.#hub.createContext(this)
    return this.#context
  }

  /** Each joined group and the promise that settles once it is subscribed. */
  get groups (): Map<string, Promise<void>> {
    this.#groups ??= new Map()
    return this.#groups
  }

  /** A child of the app logger that carries the upgrade request id (`reqId`), the connection id and the hub. */
  get log (): FastifyBaseLogger {
    this.#log ??= this.#hub.log.child({ reqId: this.#requestId, connectionId: this.id, hub: this.#hub.name })
    return this.#log
  }

  get connected (): boolean {
    return this.#state === 'connected'
  }

  /**
   * Queues an encoded hub message for this connection, framed for the WebSocket here. Queued
   * frames go out together in the hub's next pass over its sockets, in the order they were
   * queued.
   */
  sendFrame (frame: Buffer | string, callback?: (err?: Error) => void): void {
    const payload = typeof frame === 'string' ? Buffer.from(frame, 'utf8') : frame
    this.sendWebSocketFrame(encodeWebSocketFrame(payload, this.protocol?.transferFormat === 'binary'), callback)
  }

  /**
   * Queues a complete WebSocket frame, such as a broadcast framed once for many connections. A
   * client that leaves more than `maximumOutgoingBufferSize` written bytes unread is closed
   * instead, so that one slow reader cannot grow server memory.
   */
  sendWebSocketFrame (frame: Buffer, callback?: (err?: Error) => void): void {
    if (this.#state !== 'connected') {
      callback?.()
      return
    }
    // Only bytes written in earlier passes count: they show the client is not reading. What is
    // queued for the next pass is bounded by what the app sends before it, at most
    // maximumWriteDelay later.
    const unsent = this.#unsentBytes()
    if (unsent > this.#hub.options.maximumOutgoingBufferSize) {
      this.#closeSlowClient()
      callback?.(new SlowClientError(unsent, this.#hub.options.maximumOutgoingBufferSize))
      return
    }
    this.#hub.outbox.send(this, frame, callback)
  }

  /** Bytes queued for the next pass and in the socket, not yet handed to the network. */
  get bufferedAmount (): number {
    return this.#unsentBytes() + this.#hub.outbox.queuedBytes(this)
  }

  /** Whether the socket has enough queued that a result stream should wait for it to drain. */
  get congested (): boolean {
    return this.bufferedAmount > this.#hub.options.maximumOutgoingBufferSize / 2
  }

  /** Writes bytes to the TCP socket under the WebSocket. The hub's outbox calls it once per pass. */
  write (bytes: Buffer, callback: ((err?: Error | null) => void) | undefined): void {
    this.sentSinceCheck = true
    const raw = this.#raw
    // `writable` reads only the socket's write state, which the write reads next anyway.
    // `destroyed` would also read its read state, one more object per socket in every pass.
    if (raw === undefined || !raw.writable) {
      callback?.(new Error('the socket is closed'))
      return
    }
    raw.write(bytes, callback)
  }

  /**
   * Writes one pass's broadcasts to all, the same bytes for every connection of this protocol.
   * The send buffer cap applies here as it does to each frame in `sendWebSocketFrame()`.
   */
  writeBroadcasts (bytes: Buffer): void {
    if (this.#state !== 'connected') return
    if (this.#unsentBytes() > this.#hub.options.maximumOutgoingBufferSize) this.#closeSlowClient()
    else this.write(bytes, undefined)
  }

  /**
   * Bytes written to the socket that the network has not taken yet. ws's `bufferedAmount` adds
   * its sender's queue, which only Close frames and a rejected handshake's response pass through
   * (other frames are written to the socket directly), and reading it costs one more object per
   * socket in every pass.
   */
  #unsentBytes (): number {
    return this.#raw === undefined ? this.#socket.bufferedAmount : this.#raw.writableLength
  }

  /** Encodes a message with this connection's protocol and queues it; settles once it is written. */
  sendMessage (message: HubMessage): Promise<void> {
    const frame = this.protocol!.writeMessage(message)
    return new Promise((resolve, reject) => {
      this.sendFrame(frame, (err) => err === undefined || err === null ? resolve() : reject(err))
    })
  }

  /** Writes a message, and waits for it to be flushed when much is already queued. */
  async sendWithBackpressure (message: HubMessage): Promise<void> {
    if (this.congested) await this.sendMessage(message)
    else this.sendFrame(this.protocol!.writeMessage(message))
  }

  /** Sends a Completion if the invocation expects one: `send()` invocations carry no id. */
  sendCompletion (invocationId: string | undefined, outcome: { result?: unknown, error?: string }, method?: string): void {
    if (invocationId === undefined || this.#state !== 'connected') return
    const message: HubMessage = { type: MessageType.Completion, invocationId }
    if (outcome.error !== undefined) message.error = outcome.error
    else if (outcome.result !== undefined) message.result = outcome.result

    let frame: Buffer
    try {
      frame = this.protocol!.writeMessage(message)
    } catch (err) {
      this.log.error({ err, method }, 'hub method result cannot be encoded')
      const error = wire.invocationFailed(method ?? 'unknown', err, this.#hub.options.enableDetailedErrors)
      frame = this.protocol!.writeMessage({ type: MessageType.Completion, invocationId, error })
    }
    this.sendFrame(frame)
  }

  /** Invokes a client method and waits for the value the client's handler returns. */
  invokeClient (method: string, args: unknown[]): Promise<unknown> {
    if (this.#state !== 'connected') return Promise.reject(new ClientDisconnectedError(this.id, method))
    this.#clientResults ??= new PendingClientResults(this.id)
    const { invocationId, result } = this.#clientResults.create(method, this.#hub.options.clientResultTimeout)
    try {
      this.sendFrame(this.protocol!.writeMessage({ type: MessageType.Invocation, target: method, arguments: args, invocationId }))
    } catch (err) {
      this.#clientResults!.fail(invocationId, err as Error)
    }
    return result
  }

  /** Whether an upload stream's full buffer has stopped reading from the socket. */
  get readingPaused (): boolean {
    return this.#socket.isPaused
  }

  /** Stops reading from the socket, so that a full upload stream holds back the client. */
  pauseReading (): void {
    this.#socket.pause()
  }

  resumeReading (): void {
    // The client's pings could not be read while paused, so the silence was the server's doing.
    this.lastReceivedAt = Date.now()
    this.#socket.resume()
  }

  /** Sends a Close message, then closes the WebSocket. Does nothing once closing has begun. */
  close ({ error, allowReconnect, code = 1000, reason, cause }: CloseOptions = {}): void {
    if (this.#state === 'closing' || this.#state === 'closed') return
    const wasConnected = this.#state === 'connected'
    this.#state = 'closing'
    this.#closeError = cause

    if (wasConnected) {
      const message: HubMessage = { type: MessageType.Close }
      if (error !== undefined) message.error = error
      if (allowReconnect === true) message.allowReconnect = true
      // Queued past the send buffer cap on purpose, after everything queued before it, because
      // the Close is the last message. The WebSocket close frame follows it.
      this.#hub.outbox.send(this, encodeWebSocketFrame(this.protocol!.writeMessage(message), this.protocol!.transferFormat === 'binary'))
    }
    this.#hub.outbox.flushConnection(this)
    this.#socket.close(code, reason)
  }

  #closeSlowClient (): void {
    if (this.#state !== 'connected') return
    const err = new SlowClientError(this.bufferedAmount, this.#hub.options.maximumOutgoingBufferSize)
    this.log.warn({ err, bufferedAmount: this.bufferedAmount }, 'hub connection closed because the client does not read fast enough')
    this.close({ error: wire.connectionClosedWithError(err, this.#hub.options.enableDetailedErrors), allowReconnect: true, cause: err })
    // A client that reads nothing will not take part in the closing handshake either.
    setTimeout(() => this.#socket.terminate(), OVERFLOW_GRACE_MS).unref()
  }

  /** Calls `listener` once the socket has closed, at once if it already has. */
  onceClosed (listener: () => void): void {
    if (this.#state === 'closed') listener()
    else (this.#closeListeners ??= []).push(listener)
  }

  /** Resolves once no invocation of this connection runs or waits. */
  idle (): Promise<void> {
    return this.#runner?.idle() ?? Promise.resolve()
  }

  /** Drops the socket without a closing handshake. */
  terminate (): void {
    this.#socket.terminate()
  }

  #receive (chunk: Buffer, isBinary: boolean): void {
    this.lastReceivedAt = Date.now()
    try {
      // The handshake may come in either frame type: clients send it as text, and some send it
      // in the same binary frame as the first MessagePack message.
      if (this.#state === 'handshaking') {
        const rest = this.#readHandshake(chunk)
        if (rest === undefined || rest.length === 0) return
        chunk = rest
      } else if (this.#state === 'connected' && isBinary !== (this.protocol!.transferFormat === 'binary')) {
        throw new UnsupportedFrameTypeError(isBinary ? 'binary' : 'text', this.protocol!.name)
      }
      if (this.#state !== 'connected') return
      for (const message of this.#reader!.read(chunk)) this.#dispatch(message)
    } catch (err) {
      this.#failWithProtocolError(err as Error)
    }
  }

  /** Handles handshake bytes. Returns the bytes that follow the handshake, if it completed. */
  #readHandshake (chunk: Buffer): Buffer | undefined {
    let split
    try {
      split = this.#handshake!.splitFirst(chunk)
    } catch (err) {
      this.#rejectHandshake(wire.HANDSHAKE_CANCELED, err as Error)
      return undefined
    }
    if (split.record === undefined) return undefined

    let request
    try {
      request = parseHandshakeRequest(split.record)
    } catch (err) {
      this.#rejectHandshake(wire.handshakeFailed(err as Error, this.#hub.options.enableDetailedErrors), err as Error)
      return undefined
    }

    const protocol = this.#hub.findProtocol(request.protocol)
    if (protocol === undefined) {
      const text = wire.protocolNotSupported(request.protocol)
      this.#rejectHandshake(text, new HandshakeError(text))
      return undefined
    }
    if (request.version > protocol.version || request.version < 1) {
      const text = wire.protocolVersionNotSupported(request.protocol, request.version)
      this.#rejectHandshake(text, new HandshakeError(text))
      return undefined
    }

    this.#acceptHandshake(protocol)
    return split.rest
  }

  #acceptHandshake (protocol: HubProtocol): void {
    const request = this.#request!
    this.#endHandshake()
    this.protocol = protocol
    this.#reader = protocol.createReader(this.#hub.options.maximumReceiveMessageSize)
    this.#state = 'connected'
    this.#hub.outbox.join(this)
    this.sendFrame(writeHandshakeResponse())
    // Checked first, so that an idle connection never creates its child logger.
    if (isDebugEnabled(this.#hub.log)) this.log.debug({ protocol: protocol.name }, 'hub connection established')

    const established = this.#hub.connectionEstablished(this, request)
    this.#established = established
    void established.then(() => {
      if (this.#established === established) this.#established = undefined
    })
  }

  #rejectHandshake (text: string, err: Error): void {
    this.#endHandshake()
    this.log.warn({ err }, 'hub handshake rejected')
    this.#state = 'closing'
    this.#socket.send(writeHandshakeResponse(text))
    this.#socket.close(1000)
  }

  #endHandshake (): void {
    clearTimeout(this.#handshakeTimer)
    this.#handshakeTimer = undefined
    this.#handshake = undefined
    this.#request = undefined
  }

  #handshakeTimedOut (): void {
    if (this.#state !== 'handshaking') return
    this.#rejectHandshake(wire.HANDSHAKE_CANCELED, new HandshakeTimeoutError(this.#hub.options.handshakeTimeout))
  }

  #failWithProtocolError (err: Error): void {
    const coded = err instanceof ProtocolError || err instanceof MessageTooLargeError || err instanceof UnsupportedFrameTypeError
      ? err
      : new ProtocolError(err.message)
    this.log.warn({ err: coded }, 'hub connection closed after a protocol error')
    this.close({
      error: wire.connectionClosedWithError(coded, this.#hub.options.enableDetailedErrors),
      allowReconnect: true,
      cause: coded,
      ...closeFrameFor(coded)
    })
  }

  #dispatch (message: HubMessage): void {
    if (message.type === MessageType.Ping) return
    // Created by the first message that needs it: a client that only pings never does.
    // Invocations wait for onConnected, so that none runs before the app set up the connection.
    const runner = this.#runner ??= new InvocationRunner(this, this.#hub, this.#established ?? SETTLED)
    switch (message.type) {
      case MessageType.Invocation:
      case MessageType.StreamInvocation:
        runner.invoke(message)
        break
      case MessageType.StreamItem:
        if (!runner.streamItem(message.invocationId, message.item)) {
          this.log.debug({ streamId: message.invocationId }, 'ignored a StreamItem for an unknown stream')
        }
        break
      case MessageType.Completion:
        if (this.#clientResults?.complete(message.invocationId, message) !== true && !runner.endUpload(message.invocationId, message.error)) {
          this.log.debug({ invocationId: message.invocationId }, 'ignored a Completion for an unknown invocation')
        }
        break
      case MessageType.CancelInvocation:
        runner.cancel(message.invocationId)
        break
      case MessageType.Close:
        this.log.debug({ error: message.error }, 'client sent Close')
        this.close()
        break
    }
  }

  /**
   * Logs an error of the socket and drops it. Errors that the client caused are logged at info
   * level, so that a client cannot fill the error log. For those, ws has already sent the close
   * code (1002, 1007 or 1009).
   */
  #socketFailed (err: Error): void {
    const code = (err as { code?: unknown }).code
    const causedByClient = typeof code === 'string' && (code.startsWith('WS_ERR_') || code === 'ECONNRESET' || code === 'EPIPE')
    this.log[causedByClient ? 'info' : 'error']({ err }, 'hub WebSocket failed')
    this.#socket.terminate()
  }

  #closed (): void {
    const wasConnected = this.protocol !== undefined
    this.#state = 'closed'
    const releasePlace = this.#releasePlace
    this.#releasePlace = undefined
    releasePlace?.()
    this.#endHandshake()
    this.#runner?.close()
    this.#clientResults?.disconnect()
    this.#hub.connectionClosed(this, wasConnected, this.#closeError)
    const listeners = this.#closeListeners
    this.#closeListeners = undefined
    for (const listener of listeners ?? []) listener()
  }
}

/** Returns whether a logger writes debug lines. Fastify's loggers are pino's, which can tell. */
function isDebugEnabled (log: FastifyBaseLogger): boolean {
  return (log as FastifyBaseLogger & { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled?.('debug') ?? true
}

/** Returns the TCP socket under a `ws` WebSocket, which ws keeps in its `_socket` field. */
function rawSocket (socket: WebSocket): Socket | undefined {
  return (socket as unknown as { _socket?: Socket })._socket
}

function toBuffer (data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (Array.isArray(data)) return Buffer.concat(data)
  return Buffer.from(data)
}
