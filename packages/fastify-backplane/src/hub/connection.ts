import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { RawData, WebSocket } from 'ws'
import {
  HandshakeError,
  HandshakeTimeoutError,
  MessageTooLargeError,
  MethodFailedError,
  MethodNotFoundError,
  ProtocolError
} from '../errors.js'
import { parseHandshakeRequest, writeHandshakeResponse } from '../protocol/handshake.js'
import { MessageType } from '../protocol/messages.js'
import type { HubMessage, HubMessageReader, HubProtocol, InvocationMessage } from '../protocol/messages.js'
import { RecordSeparatorSplitter } from '../protocol/record-separator.js'
import type { Hub } from './hub.js'
import { HubException } from './hub-exception.js'
import type { HubConnectionContext } from './options.js'
import * as wire from './wire-errors.js'

/** Options of `HubConnection.close()`, which become the protocol's Close message. */
export interface CloseOptions {
  /** The text the client shows; omit it for a normal close. */
  error?: string
  /** Whether a client with automatic reconnect may reconnect. */
  allowReconnect?: boolean
  /** The WebSocket close code. */
  code?: number
  /** The error to log and hand to `onDisconnected`. */
  cause?: Error
}

/**
 * One WebSocket connection to a hub, from handshake to close. Incoming bytes are split into
 * messages regardless of frame boundaries; invocations run one at a time, in arrival order.
 */
export class HubConnection {
  readonly id = randomBytes(16).toString('base64url')
  /** The user id that the hub's authenticate option returned, if any. */
  readonly userId: string | undefined
  readonly context: HubConnectionContext
  readonly log: FastifyBaseLogger
  /** Each joined group and the promise that settles once it is subscribed. */
  readonly groups = new Map<string, Promise<void>>()
  protocol: HubProtocol | undefined
  lastReceivedAt = Date.now()
  lastSentAt = Date.now()

  readonly #hub: Hub
  readonly #socket: WebSocket
  #state: 'handshaking' | 'connected' | 'closing' | 'closed' = 'handshaking'
  readonly #handshake: RecordSeparatorSplitter
  #reader: HubMessageReader | undefined
  #handshakeTimer: NodeJS.Timeout | undefined
  #invocations: Promise<unknown> = Promise.resolve()
  #queuedInvocations = 0
  #closeError: Error | undefined
  readonly #closeListeners: Array<() => void> = []

  constructor (hub: Hub, socket: WebSocket, request: FastifyRequest, userId: string | undefined) {
    this.#hub = hub
    this.userId = userId
    this.#socket = socket
    this.#handshake = new RecordSeparatorSplitter(hub.options.maximumReceiveMessageSize)
    this.log = request.log.child({ connectionId: this.id, hub: hub.name })
    this.context = hub.createContext(this, request)

    socket.on('message', (data) => this.#receive(toBuffer(data)))
    socket.on('close', () => this.#closed())
    socket.on('error', (err) => this.log.debug({ err }, 'hub WebSocket error'))
    this.#handshakeTimer = setTimeout(() => this.#handshakeTimedOut(), hub.options.handshakeTimeout)
  }

  get connected (): boolean {
    return this.#state === 'connected'
  }

  /** Writes an already-encoded frame, such as a broadcast shared by many connections. */
  sendFrame (frame: Buffer | string, callback?: (err?: Error) => void): void {
    if (this.#state !== 'connected' && this.#state !== 'closing') {
      callback?.()
      return
    }
    this.lastSentAt = Date.now()
    this.#socket.send(frame, { binary: this.protocol?.transferFormat === 'binary' }, callback)
  }

  /** Encodes a message with this connection's protocol and writes it. */
  sendMessage (message: HubMessage): Promise<void> {
    const frame = this.protocol!.writeMessage(message)
    return new Promise((resolve, reject) => {
      this.sendFrame(frame, (err) => err === undefined || err === null ? resolve() : reject(err))
    })
  }

  /** Sends a Close message, then closes the WebSocket. Does nothing once closing has begun. */
  close ({ error, allowReconnect, code = 1000, cause }: CloseOptions = {}): void {
    if (this.#state === 'closing' || this.#state === 'closed') return
    const wasConnected = this.#state === 'connected'
    this.#state = 'closing'
    this.#closeError = cause

    if (wasConnected) {
      const message: HubMessage = { type: MessageType.Close }
      if (error !== undefined) message.error = error
      if (allowReconnect === true) message.allowReconnect = true
      this.sendFrame(this.protocol!.writeMessage(message))
    }
    this.#socket.close(code)
  }

  /** Calls `listener` once the socket has closed, at once if it already has. */
  onceClosed (listener: () => void): void {
    if (this.#state === 'closed') listener()
    else this.#closeListeners.push(listener)
  }

  /** Drops the socket without a closing handshake. */
  terminate (): void {
    this.#socket.terminate()
  }

  #receive (chunk: Buffer): void {
    this.lastReceivedAt = Date.now()
    try {
      if (this.#state === 'handshaking') {
        const rest = this.#readHandshake(chunk)
        if (rest === undefined || rest.length === 0) return
        chunk = rest
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
      split = this.#handshake.splitFirst(chunk)
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
    clearTimeout(this.#handshakeTimer)
    this.protocol = protocol
    this.#reader = protocol.createReader(this.#hub.options.maximumReceiveMessageSize)
    this.#state = 'connected'
    this.sendFrame(writeHandshakeResponse())
    this.log.debug({ protocol: protocol.name }, 'hub connection established')

    // Invocations queue behind onConnected, so that none runs before the app has set up
    // the connection.
    this.#invocations = this.#hub.connectionEstablished(this)
  }

  #rejectHandshake (text: string, err: Error): void {
    clearTimeout(this.#handshakeTimer)
    this.log.warn({ err }, 'hub handshake rejected')
    this.#state = 'closing'
    this.#socket.send(writeHandshakeResponse(text))
    this.#socket.close(1000)
  }

  #handshakeTimedOut (): void {
    if (this.#state !== 'handshaking') return
    this.#rejectHandshake(wire.HANDSHAKE_CANCELED, new HandshakeTimeoutError(this.#hub.options.handshakeTimeout))
  }

  #failWithProtocolError (err: Error): void {
    const coded = err instanceof ProtocolError || err instanceof MessageTooLargeError
      ? err
      : new ProtocolError(err.message)
    this.log.warn({ err: coded }, 'hub connection closed after a protocol error')
    this.close({
      error: wire.connectionClosedWithError(coded, this.#hub.options.enableDetailedErrors),
      allowReconnect: true,
      cause: coded
    })
  }

  #dispatch (message: HubMessage): void {
    switch (message.type) {
      case MessageType.Invocation:
        this.#enqueueInvocation(message)
        break
      case MessageType.StreamInvocation:
        this.log.warn({ method: message.target }, 'hub method invoked with a streaming invocation')
        void this.#complete(message.invocationId, { error: this.#streamInvocationError(message.target) })
        break
      case MessageType.Close:
        this.log.debug({ error: message.error }, 'client sent Close')
        this.close()
        break
      case MessageType.Ping:
        break
      default:
        this.log.debug({ type: message.type }, 'ignored a hub message of a type this hub does not use')
    }
  }

  #streamInvocationError (target: string): string {
    const entry = this.#hub.findMethod(target)
    return entry === undefined ? wire.methodDoesNotExist(target) : wire.streamingInvocationOfNonStreamingMethod(entry.name)
  }

  #enqueueInvocation (message: InvocationMessage): void {
    if (this.#queuedInvocations >= this.#hub.options.maximumQueuedInvocationsPerClient) {
      this.log.warn({ method: message.target, queued: this.#queuedInvocations }, 'hub invocation rejected: too many queued invocations')
      const err = new HubException('Too many invocations are waiting on this connection.')
      void this.#complete(message.invocationId, { error: wire.invocationFailed(message.target, err, false) })
      return
    }

    this.#queuedInvocations++
    this.#invocations = this.#invocations
      .then(() => this.#invoke(message))
      .finally(() => { this.#queuedInvocations-- })
  }

  /** Runs one invocation and sends its Completion. Never rejects. */
  async #invoke (message: InvocationMessage): Promise<void> {
    if (this.#state !== 'connected') return
    const entry = this.#hub.findMethod(message.target)
    if (entry === undefined) {
      this.log.info({ err: new MethodNotFoundError(this.#hub.name, message.target) }, 'hub method not found')
      await this.#complete(message.invocationId, { error: wire.methodDoesNotExist(message.target) })
      return
    }
    if (message.streamIds !== undefined && message.streamIds.length > 0) {
      this.log.warn({ method: entry.name, streams: message.streamIds.length }, 'hub method received upload streams it does not accept')
      await this.#complete(message.invocationId, { error: wire.streamsNotExpected(entry.name, message.streamIds.length) })
      return
    }

    let result: unknown
    try {
      result = await entry.method(this.context, ...message.arguments)
    } catch (err) {
      this.log.error({ err, cause: new MethodFailedError(this.#hub.name, entry.name) }, 'hub method failed')
      await this.#complete(message.invocationId, { error: wire.invocationFailed(entry.name, err, this.#hub.options.enableDetailedErrors) })
      return
    }
    await this.#complete(message.invocationId, { result }, entry.name)
  }

  /** Sends a Completion if the invocation expects one: `send()` invocations carry no id. */
  async #complete (invocationId: string | undefined, outcome: { result?: unknown, error?: string }, method?: string): Promise<void> {
    if (invocationId === undefined || this.#state !== 'connected') return
    const message: HubMessage = { type: MessageType.Completion, invocationId }
    if (outcome.error !== undefined) message.error = outcome.error
    else if (outcome.result !== undefined) message.result = outcome.result

    let frame: Buffer
    try {
      frame = this.protocol!.writeMessage(message)
    } catch (err) {
      this.log.error({ err, method }, 'hub method result cannot be encoded')
      frame = this.protocol!.writeMessage({ type: MessageType.Completion, invocationId, error: wire.invocationFailed(method ?? 'unknown', err, this.#hub.options.enableDetailedErrors) })
    }
    this.sendFrame(frame)
  }

  #closed (): void {
    const wasConnected = this.protocol !== undefined
    this.#state = 'closed'
    clearTimeout(this.#handshakeTimer)
    this.#hub.connectionClosed(this, wasConnected, this.#closeError)
    for (const listener of this.#closeListeners.splice(0)) listener()
  }
}

function toBuffer (data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  if (Array.isArray(data)) return Buffer.concat(data)
  return Buffer.from(data)
}
