import { HubException } from './hub-exception.js'
import {
  IdTooLongError,
  InvalidArgumentsError,
  InvocationForbiddenError,
  InvocationRateLimitedError,
  MethodFailedError,
  MethodNameTooLongError,
  MethodNotFoundError,
  RateLimitClosedError,
  TooManyUploadStreamsError
} from '../errors.js'
import { MessageType } from '../protocol/messages.js'
import type { InvocationMessage, StreamInvocationMessage } from '../protocol/messages.js'
import type { HubConnection } from './connection.js'
import type { Hub } from './hub.js'
import { TokenBucket } from './limits.js'
import { CLOSE_POLICY_VIOLATION, connectionRejected, invocationRejected, invocationUnauthorized, toClientError } from './rejections.js'
import type { CodedError } from './rejections.js'
import type { ResolvedHubMethod } from './schema.js'
import { UploadStream } from './upload-stream.js'
import * as wire from './wire-errors.js'

type Invocation = InvocationMessage | StreamInvocationMessage

/**
 * Runs one connection's invocations: at most `maximumParallelInvocationsPerClient` at a time,
 * the rest waiting in a bounded queue in arrival order. It also owns the connection's upload
 * streams (client to server) and result streams (server to client), and applies the
 * per-connection limits, argument schemas and authorization before a method runs.
 */
export class InvocationRunner {
  readonly #connection: HubConnection
  readonly #hub: Hub
  readonly #ready: Promise<unknown>
  readonly #queue: Array<() => Promise<void>> = []
  // Created by the first upload or result stream, as most connections never open one.
  #uploads: Map<string, UploadStream> | undefined
  #streams: Map<string, { iterator: AsyncIterator<unknown>, cancelled: boolean }> | undefined
  #running = 0
  readonly #idleListeners: Array<() => void> = []
  readonly #rateLimit: TokenBucket
  /** Invocations rejected by the rate limit since the token bucket was last full. */
  #rateLimited = 0

  /** `ready` settles when the connection is set up; no invocation starts before it. */
  constructor (connection: HubConnection, hub: Hub, ready: Promise<unknown>) {
    this.#connection = connection
    this.#hub = hub
    this.#ready = ready
    const rate = hub.options.maximumInvocationsPerSecond
    this.#rateLimit = new TokenBucket(rate, rate)
  }

  /** Starts or queues an Invocation or StreamInvocation from the client. */
  invoke (message: Invocation): void {
    if (!this.#connection.connected || !this.#admit(message)) return
    // Upload streams open now, so that items arriving while the invocation waits are buffered.
    const uploads = (message.streamIds ?? []).map((streamId) => this.#openUpload(streamId))
    const release = (): void => this.#releaseUploads(message.streamIds ?? [], uploads)
    const task = async (): Promise<void> => {
      // A result stream outlives the invocation slot, and its uploads stay open until it ends.
      const stream = await this.#run(message, uploads)
      if (stream === undefined) release()
      else void stream.ended.finally(release)
    }

    if (this.#running < this.#hub.options.maximumParallelInvocationsPerClient) {
      this.#start(task)
      return
    }
    if (this.#queue.length >= this.#hub.options.maximumQueuedInvocationsPerClient) {
      this.#connection.log.warn({ method: message.target, queued: this.#queue.length }, 'hub invocation rejected: too many queued invocations')
      for (const upload of uploads) upload.end()
      const err = new HubException('Too many invocations are waiting on this connection.')
      this.#connection.sendCompletion(message.invocationId, { error: wire.invocationFailed(message.target, err, false) })
      return
    }
    this.#queue.push(task)
  }

  /** Feeds a StreamItem to its upload stream. Returns false if no such stream is open. */
  streamItem (streamId: string, item: unknown): boolean {
    const upload = this.#uploads?.get(streamId)
    upload?.push(item)
    return upload !== undefined
  }

  /** Ends an upload stream on the client's Completion. Returns false if no such stream is open. */
  endUpload (streamId: string, error: string | undefined): boolean {
    const upload = this.#uploads?.get(streamId)
    if (upload === undefined) return false
    this.#uploads!.delete(streamId)
    upload.end(error === undefined ? undefined : new HubException(error))
    return true
  }

  /** Stops a result stream on the client's CancelInvocation; its iterator's return() runs. */
  cancel (invocationId: string): void {
    const stream = this.#streams?.get(invocationId)
    if (stream === undefined) return
    stream.cancelled = true
    stream.iterator.return?.().catch((err: unknown) => {
      this.#connection.log.warn({ err, invocationId }, 'hub stream failed to stop')
    })
  }

  /** Ends every stream of a closed connection. */
  close (): void {
    for (const upload of this.#uploads?.values() ?? []) upload.end(new HubException('The connection closed.'))
    this.#uploads?.clear()
    for (const invocationId of this.#streams?.keys() ?? []) this.cancel(invocationId)
    this.#queue.length = 0
  }

  /** Resolves once no invocation runs or waits; used to let work finish before shutdown. */
  idle (): Promise<void> {
    if (this.#running === 0 && this.#queue.length === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idleListeners.push(resolve))
  }

  #start (task: () => Promise<void>): void {
    this.#running++
    const settled = task().catch((err: unknown) => {
      this.#connection.log.error({ err }, 'hub invocation failed outside its method')
    })
    void settled.finally(() => {
      this.#running--
      const next = this.#queue.shift()
      if (next !== undefined) this.#start(next)
      else if (this.#running === 0) for (const resolve of this.#idleListeners.splice(0)) resolve()
    })
  }

  /**
   * Applies the per-connection limits to an arriving invocation, before it opens uploads or
   * takes a place in the queue. Returns false after rejecting it or closing the connection.
   */
  #admit (message: Invocation): boolean {
    const options = this.#hub.options
    const ids: Array<[string, string | undefined]> = [['Invocation id', message.invocationId]]
    for (const streamId of message.streamIds ?? []) ids.push(['Stream id', streamId])
    for (const [kind, id] of ids) {
      if (id !== undefined && id.length > options.maximumInvocationIdLength) {
        this.#closeConnection(new IdTooLongError(kind, id.length, options.maximumInvocationIdLength))
        return false
      }
    }
    // The rate limit comes before the other checks, so rejections cannot be used to flood.
    if (!this.#takeRateLimitToken(message)) return false

    if (message.target.length > options.maximumMethodNameLength) {
      this.#reject(message, new MethodNameTooLongError(message.target.length, options.maximumMethodNameLength))
      return false
    }
    const uploadCount = message.streamIds?.length ?? 0
    const openUploads = this.#uploads?.size ?? 0
    if (uploadCount > 0 && openUploads + uploadCount > options.maximumUploadStreamsPerClient) {
      this.#reject(message, new TooManyUploadStreamsError(uploadCount, openUploads, options.maximumUploadStreamsPerClient))
      return false
    }
    return true
  }

  /**
   * Takes a token for one invocation. Without one, the invocation is rejected, and once more
   * than `maximumRateLimitedInvocations` were rejected since the bucket was last full, the
   * connection is closed. Only the first rejection of a run is logged.
   */
  #takeRateLimitToken (message: Invocation): boolean {
    if (this.#rateLimited > 0 && this.#rateLimit.isFull()) this.#rateLimited = 0
    if (this.#rateLimit.take()) return true

    const options = this.#hub.options
    this.#rateLimited++
    if (this.#rateLimited > options.maximumRateLimitedInvocations) {
      this.#closeConnection(new RateLimitClosedError(this.#rateLimited, options.maximumInvocationsPerSecond))
      return false
    }
    this.#reject(message, new InvocationRateLimitedError(options.maximumInvocationsPerSecond), this.#rateLimited === 1)
    return false
  }

  /** Sends the error Completion for an invocation that a check rejected before its method ran. */
  #reject (message: Invocation, err: CodedError, log = true): void {
    if (log) this.#connection.log.info({ err, method: message.target }, 'hub invocation rejected')
    this.#connection.sendCompletion(message.invocationId, { error: invocationRejected(message.target, err) })
  }

  /** Closes the connection with the error in its Close message and code 1008, without reconnecting. */
  #closeConnection (err: CodedError): void {
    this.#connection.log.warn({ err }, 'hub connection closed by a limit')
    this.#connection.close({ error: connectionRejected(err), allowReconnect: false, code: CLOSE_POLICY_VIOLATION, reason: err.code, cause: err })
  }

  /**
   * Drops what the client still sends on the uploads of a finished invocation. Without this an
   * unread upload would keep the socket paused for good.
   */
  #releaseUploads (streamIds: string[], uploads: UploadStream[]): void {
    for (const [index, streamId] of streamIds.entries()) {
      const upload = uploads[index]!
      upload[Symbol.asyncIterator]().return?.().catch(() => {})
      if (this.#uploads?.get(streamId) === upload) this.#uploads.delete(streamId)
    }
  }

  #openUpload (streamId: string): UploadStream {
    const upload = new UploadStream(this.#hub.options.streamBufferCapacity, () => this.#connection.pauseReading(), () => this.#connection.resumeReading())
    this.#uploads ??= new Map()
    this.#uploads.get(streamId)?.end(new HubException('The stream id was reused.'))
    this.#uploads.set(streamId, upload)
    return upload
  }

  /**
   * Runs one invocation and sends its Completion. For a result stream, returns a promise that
   * settles when the stream ends, wrapped so that awaiting the invocation does not wait for it.
   * Never rejects.
   */
  async #run (message: Invocation, uploads: UploadStream[]): Promise<{ ended: Promise<void> } | undefined> {
    await this.#ready
    if (!this.#connection.connected) return
    const streaming = message.type === MessageType.StreamInvocation
    const entry = this.#hub.options.methods.get(message.target.toLowerCase())
    if (entry === undefined) {
      this.#connection.log.info({ err: new MethodNotFoundError(this.#hub.name, message.target) }, 'hub method not found')
      this.#connection.sendCompletion(message.invocationId, { error: wire.methodDoesNotExist(message.target) })
      return
    }
    if (!this.#argumentsValid(message, entry) || !await this.#authorized(message, entry)) return
    if (!this.#connection.connected) return

    let result: unknown
    try {
      result = await entry.method(this.#connection.context, ...message.arguments, ...uploads)
    } catch (err) {
      // A HubException reports a client's mistake, so it must not fill the error log.
      const level = err instanceof HubException ? 'info' : 'error'
      this.#connection.log[level]({ err, cause: new MethodFailedError(this.#hub.name, entry.name) }, 'hub method failed')
      this.#connection.sendCompletion(message.invocationId, { error: wire.invocationFailed(entry.name, toClientError(err), this.#hub.options.enableDetailedErrors) })
      return
    }

    if (streaming !== isAsyncIterable(result)) {
      this.#rejectInvocationMode(message, entry.name, result)
      return
    }
    if (streaming) return { ended: this.#stream(message.invocationId!, entry.name, result as AsyncIterable<unknown>) }
    this.#connection.sendCompletion(message.invocationId, { result }, entry.name)
  }

  /** Checks the arguments against the method's schema; rejects the invocation if they fail. */
  #argumentsValid (message: Invocation, entry: ResolvedHubMethod): boolean {
    const invalid = entry.validate?.(message.arguments)
    if (invalid === undefined) return true
    this.#reject(message, new InvalidArgumentsError(entry.name, invalid.path, invalid.message))
    return false
  }

  /**
   * Runs the hub's and the method's `authorize` options. A denial gets ASP.NET Core's text; a
   * thrown error is reported as a method's error would be.
   */
  async #authorized (message: Invocation, entry: ResolvedHubMethod): Promise<boolean> {
    const context = this.#connection.context
    try {
      for (const authorize of [this.#hub.options.authorize, entry.authorize]) {
        if (authorize === undefined || await authorize(context, entry.name, message.arguments) === true) continue
        this.#connection.log.info({ err: new InvocationForbiddenError(this.#hub.name, entry.name) }, 'hub invocation unauthorized')
        this.#connection.sendCompletion(message.invocationId, { error: invocationUnauthorized(message.target) })
        return false
      }
      return true
    } catch (err) {
      const level = err instanceof HubException ? 'info' : 'error'
      this.#connection.log[level]({ err, method: entry.name }, 'hub authorization failed')
      this.#connection.sendCompletion(message.invocationId, { error: wire.invocationFailed(entry.name, toClientError(err), this.#hub.options.enableDetailedErrors) })
      return false
    }
  }

  #rejectInvocationMode (message: Invocation, method: string, result: unknown): void {
    this.#connection.log.warn({ method, streaming: message.type === MessageType.StreamInvocation }, 'hub method invoked in the wrong mode')
    if (message.type === MessageType.StreamInvocation) {
      this.#connection.sendCompletion(message.invocationId, { error: wire.streamingInvocationOfNonStreamingMethod(method) })
      return
    }
    const iterator = (result as AsyncIterable<unknown>)[Symbol.asyncIterator]()
    iterator.return?.().catch(() => {})
    this.#connection.sendCompletion(message.invocationId, { error: wire.invocationOfStreamingMethod(method) })
  }

  /** Sends a result stream's items, then a Completion; stops early on CancelInvocation. */
  async #stream (invocationId: string, method: string, iterable: AsyncIterable<unknown>): Promise<void> {
    const stream = { iterator: iterable[Symbol.asyncIterator](), cancelled: false }
    this.#streams ??= new Map()
    this.#streams.set(invocationId, stream)
    try {
      while (!stream.cancelled) {
        const { value, done } = await stream.iterator.next()
        if (done === true || stream.cancelled) break
        await this.#connection.sendWithBackpressure({ type: MessageType.StreamItem, invocationId, item: value })
      }
      this.#connection.sendCompletion(invocationId, {})
    } catch (err) {
      this.#connection.log.error({ err, method, invocationId }, 'hub stream failed')
      this.#connection.sendCompletion(invocationId, { error: wire.streamFailed(err, this.#hub.options.enableDetailedErrors) })
    } finally {
      this.#streams?.delete(invocationId)
    }
  }
}

function isAsyncIterable (value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function'
}
