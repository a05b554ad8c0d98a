import { HubException } from './hub-exception.js'
import { MethodFailedError, MethodNotFoundError } from '../errors.js'
import { MessageType } from '../protocol/messages.js'
import type { InvocationMessage, StreamInvocationMessage } from '../protocol/messages.js'
import type { HubConnection } from './connection.js'
import type { Hub } from './hub.js'
import { UploadStream } from './upload-stream.js'
import * as wire from './wire-errors.js'

type Invocation = InvocationMessage | StreamInvocationMessage

/**
 * Runs one connection's invocations: at most `maximumParallelInvocationsPerClient` at a time,
 * the rest waiting in a bounded queue in arrival order. It also owns the connection's upload
 * streams (client to server) and result streams (server to client).
 */
export class InvocationRunner {
  readonly #connection: HubConnection
  readonly #hub: Hub
  readonly #ready: Promise<unknown>
  readonly #queue: Array<() => Promise<void>> = []
  readonly #uploads = new Map<string, UploadStream>()
  readonly #streams = new Map<string, { iterator: AsyncIterator<unknown>, cancelled: boolean }>()
  #running = 0
  readonly #idleListeners: Array<() => void> = []

  /** `ready` settles when the connection is set up; no invocation starts before it. */
  constructor (connection: HubConnection, hub: Hub, ready: Promise<unknown>) {
    this.#connection = connection
    this.#hub = hub
    this.#ready = ready
  }

  /** Starts or queues an Invocation or StreamInvocation from the client. */
  invoke (message: Invocation): void {
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
    const upload = this.#uploads.get(streamId)
    upload?.push(item)
    return upload !== undefined
  }

  /** Ends an upload stream on the client's Completion. Returns false if no such stream is open. */
  endUpload (streamId: string, error: string | undefined): boolean {
    const upload = this.#uploads.get(streamId)
    if (upload === undefined) return false
    this.#uploads.delete(streamId)
    upload.end(error === undefined ? undefined : new HubException(error))
    return true
  }

  /** Stops a result stream on the client's CancelInvocation; its iterator's return() runs. */
  cancel (invocationId: string): void {
    const stream = this.#streams.get(invocationId)
    if (stream === undefined) return
    stream.cancelled = true
    stream.iterator.return?.().catch((err: unknown) => {
      this.#connection.log.warn({ err, invocationId }, 'hub stream failed to stop')
    })
  }

  /** Ends every stream of a closed connection. */
  close (): void {
    for (const upload of this.#uploads.values()) upload.end(new HubException('The connection closed.'))
    this.#uploads.clear()
    for (const invocationId of this.#streams.keys()) this.cancel(invocationId)
    this.#queue.length = 0
  }

  /** Resolves once no invocation runs or waits; used to let work finish before shutdown. */
  idle (): Promise<void> {
    if (this.#running === 0 && this.#queue.length === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idleListeners.push(resolve))
  }

  #start (task: () => Promise<void>): void {
    this.#running++
    void task().finally(() => {
      this.#running--
      const next = this.#queue.shift()
      if (next !== undefined) this.#start(next)
      else if (this.#running === 0) for (const resolve of this.#idleListeners.splice(0)) resolve()
    })
  }

  /**
   * Drops what the client still sends on the uploads of a finished invocation. Without this an
   * unread upload would keep the socket paused for good.
   */
  #releaseUploads (streamIds: string[], uploads: UploadStream[]): void {
    for (const [index, streamId] of streamIds.entries()) {
      const upload = uploads[index]!
      upload[Symbol.asyncIterator]().return?.().catch(() => {})
      if (this.#uploads.get(streamId) === upload) this.#uploads.delete(streamId)
    }
  }

  #openUpload (streamId: string): UploadStream {
    const upload = new UploadStream(this.#hub.options.streamBufferCapacity, () => this.#connection.pauseReading(), () => this.#connection.resumeReading())
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
    const entry = this.#hub.findMethod(message.target)
    if (entry === undefined) {
      this.#connection.log.info({ err: new MethodNotFoundError(this.#hub.name, message.target) }, 'hub method not found')
      this.#connection.sendCompletion(message.invocationId, { error: wire.methodDoesNotExist(message.target) })
      return
    }

    let result: unknown
    try {
      result = await entry.method(this.#connection.context, ...message.arguments, ...uploads)
    } catch (err) {
      // A HubException reports a client's mistake, so it must not fill the error log.
      const level = err instanceof HubException ? 'info' : 'error'
      this.#connection.log[level]({ err, cause: new MethodFailedError(this.#hub.name, entry.name) }, 'hub method failed')
      this.#connection.sendCompletion(message.invocationId, { error: wire.invocationFailed(entry.name, err, this.#hub.options.enableDetailedErrors) })
      return
    }

    if (streaming !== isAsyncIterable(result)) {
      this.#rejectInvocationMode(message, entry.name, result)
      return
    }
    if (streaming) return { ended: this.#stream(message.invocationId!, entry.name, result as AsyncIterable<unknown>) }
    this.#connection.sendCompletion(message.invocationId, { result }, entry.name)
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
      this.#streams.delete(invocationId)
    }
  }
}

function isAsyncIterable (value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function'
}
