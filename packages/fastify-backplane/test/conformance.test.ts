import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import type { Socket } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import { describe, test } from 'node:test'
import type { TestContext } from 'node:test'
import { DefaultHttpClient, HttpTransportType, HubConnectionBuilder, LogLevel, NullLogger, Subject } from '@microsoft/signalr'
import type { HttpRequest, HttpResponse, HubConnection, IHttpConnectionOptions, IStreamResult } from '@microsoft/signalr'
import { MessagePackHubProtocol } from '@microsoft/signalr-protocol-msgpack'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { HubException, InProcessBus } from '../src/index.js'
import type { HubConnectionContext, HubOptions } from '../src/index.js'
import { startInstance } from './helpers/instances.js'
import { JSON_HANDSHAKE, RawHubClient } from './helpers/raw-hub.js'
import { startRedisServer } from './helpers/redis-server.js'
import { baseUrl, Received } from './helpers/signalr.js'
import { requestUpgrade } from './helpers/upgrade.js'
import { deferred, within } from './helpers/promises.js'

const CLOSED_WITH_ERROR = 'Server returned an error on close: Connection closed with an error.'
const SECRET = 'conformance-test-secret-0123456789'

/** Hub methods that every test's hub has. Tests add their own next to them. */
const methods = {
  Echo: (_context: HubConnectionContext, value: unknown) => value,
  EchoAll: (_context: HubConnectionContext, ...values: unknown[]) => values,
  TypesOf: (_context: HubConnectionContext, ...values: unknown[]) => values.map(describeType),
  WhoAmI: (context: HubConnectionContext) => context.connectionId,
  WhoIsUser: (context: HubConnectionContext) => context.userId ?? null,
  Count: async function * (_context: HubConnectionContext, count: number) {
    for (let index = 0; index < count; index++) yield index
  },
  Sum: async (_context: HubConnectionContext, numbers: AsyncIterable<number>) => {
    let sum = 0
    for await (const value of numbers) sum += value
    return sum
  },
  AskCaller: (context: HubConnectionContext, method: string, ...args: unknown[]) => context.clients.caller.invoke(method, ...args),
  AskConnection: (context: HubConnectionContext, method: string, ...args: unknown[]) => context.invoke(method, ...args),
  /** Awaits a client result and returns how it failed, so the client can see the server's error. */
  AskCallerError: async (context: HubConnectionContext, method: string) => {
    try {
      return { result: await context.clients.caller.invoke(method) }
    } catch (err) {
      const { code, message } = err as Error & { code?: string }
      return { code, message }
    }
  }
}

function describeType (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  return typeof value
}

/** How a test builds the official client for one hub protocol. */
interface ClientProtocol {
  name: string
  configure: (builder: HubConnectionBuilder) => HubConnectionBuilder
  /** Values that only this protocol can carry, for the round-trip test. */
  extraValues: Array<[string, unknown]>
}

const clientProtocols: ClientProtocol[] = [
  { name: 'json', configure: (builder) => builder, extraValues: [] },
  {
    name: 'messagepack',
    configure: (builder) => builder.withHubProtocol(new MessagePackHubProtocol()),
    extraValues: [['binary', Uint8Array.of(0, 1, 127, 128, 255)], ['date', new Date(Date.UTC(2024, 1, 29, 12, 30, 45, 123))]]
  }
]

/** Values of every JSON type, for invocations that must return them unchanged. */
const roundTripValues: Array<[string, unknown]> = [
  ['empty string', ''],
  ['text', 'text'],
  ['non-ASCII text', 'caf\u00e9 \u2713 \u{1F600}'],
  ['long text', 'x'.repeat(10_000)],
  ['zero', 0],
  ['integer', 42],
  ['negative integer', -7],
  ['fraction', 1.5],
  ['largest safe integer', Number.MAX_SAFE_INTEGER],
  ['true', true],
  ['false', false],
  ['null', null],
  ['empty array', []],
  ['mixed array', [1, 'two', null, false]],
  ['empty object', {}],
  ['nested object', { name: 'n', list: [1, { deep: true }], child: { value: -1.25 } }]
]

interface ConnectOptions {
  /** Fetch `{path}/negotiate` first, as clients do unless they skip negotiation. */
  negotiate?: boolean
  accessToken?: string
  reconnectDelays?: number[]
  httpClient?: DefaultHttpClient
  /** How often the client sends a Ping when it has sent nothing else, in ms. */
  keepAliveInterval?: number
}

/** Connects the official client to `/testHub` on `app` and stops it when the test ends. */
async function connect (t: TestContext, app: FastifyInstance, protocol: ClientProtocol, options: ConnectOptions = {}): Promise<HubConnection> {
  const httpOptions: IHttpConnectionOptions = options.negotiate === true
    ? {}
    : { skipNegotiation: true, transport: HttpTransportType.WebSockets }
  if (options.accessToken !== undefined) httpOptions.accessTokenFactory = () => options.accessToken!
  if (options.httpClient !== undefined) httpOptions.httpClient = options.httpClient

  let builder = new HubConnectionBuilder()
    .withUrl(baseUrl(app) + '/testHub', httpOptions)
    .configureLogging(LogLevel.None)
  builder = protocol.configure(builder)
  if (options.reconnectDelays !== undefined) builder = builder.withAutomaticReconnect(options.reconnectDelays)
  if (options.keepAliveInterval !== undefined) builder = builder.withKeepAliveInterval(options.keepAliveInterval)

  const connection = builder.build()
  await connection.start()
  t.after(() => connection.stop())
  return connection
}

async function startHub (t: TestContext, options: Partial<HubOptions> = {}, extra: { bus?: InProcessBus, logLines?: string[] } = {}): Promise<FastifyInstance> {
  return await startInstance(t, {
    backplane: extra.bus === undefined ? {} : { inProcessBus: extra.bus },
    hub: { ...options, methods: { ...methods, ...options.methods } },
    ...(extra.logLines === undefined ? {} : { logLines: extra.logLines })
  })
}

/** Subscribes to a result stream and settles with every item and how the stream ended. */
async function collectStream<T> (stream: IStreamResult<T>): Promise<{ items: T[], error: Error | undefined }> {
  const items: T[] = []
  return await new Promise((resolve) => {
    stream.subscribe({
      next: (item) => { items.push(item) },
      complete: () => resolve({ items, error: undefined }),
      error: (error) => resolve({ items, error })
    })
  })
}

/**
 * Sends the client's HTTP requests, negotiation among them, to the origin `to` in place of
 * `from`. The WebSocket does not go through the HTTP client, so it still opens on `from`.
 */
class NegotiateElsewhereHttpClient extends DefaultHttpClient {
  /** Every URL this client sent a request to. */
  readonly sentUrls: string[] = []
  readonly #from: string
  readonly #to: string

  constructor (from: string, to: string) {
    super(NullLogger.instance)
    this.#from = from
    this.#to = to
  }

  override send (request: HttpRequest): Promise<HttpResponse> {
    const url = request.url?.replace(this.#from, this.#to)
    this.sentUrls.push(String(url))
    return super.send({ ...request, url })
  }
}

/** Builds a connection token as the hub issues them: a base64url body, a dot, its HMAC-SHA256. */
function signToken (text: string, secret = SECRET): string {
  const body = Buffer.from(text, 'utf8').toString('base64url')
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`
}

async function negotiate (app: FastifyInstance, headers: Record<string, string> = {}): Promise<{ status: number, body: Record<string, unknown> }> {
  const response = await fetch(baseUrl(app) + '/testHub/negotiate?negotiateVersion=1', { method: 'POST', headers })
  return { status: response.status, body: await response.json() as Record<string, unknown> }
}

function hubWebSocketUrl (app: FastifyInstance, query = ''): string {
  return baseUrl(app).replace(/^http/, 'ws') + '/testHub' + query
}

/** Opens a raw JSON-protocol connection with extra query and headers, and completes the handshake. */
async function connectRaw (t: TestContext, app: FastifyInstance, query: string, headers: Record<string, string> = {}): Promise<RawHubClient> {
  const client = await RawHubClient.open(hubWebSocketUrl(app, query), headers)
  t.after(() => client.close())
  client.send(JSON_HANDSHAKE)
  assert.equal(await client.nextRecord(), '{}')
  return client
}

let nextInvocationId = 0

/** Invokes `method` on a raw JSON connection and returns the Completion's result. */
async function invokeRaw (client: RawHubClient, method: string, ...args: unknown[]): Promise<unknown> {
  const invocationId = String(nextInvocationId++)
  client.sendMessages({ type: 1, invocationId, target: method, arguments: args })
  const completion = await client.nextMessage()
  assert.equal(completion.invocationId, invocationId)
  assert.equal(completion.error, undefined)
  return completion.result
}

for (const protocol of clientProtocols) {
  describe(`${protocol.name} client`, () => {
    test('invoke round-trips every value type', async (t) => {
      const app = await startHub(t)
      const client = await connect(t, app, protocol)

      for (const [name, value] of [...roundTripValues, ...protocol.extraValues]) {
        assert.deepEqual(await client.invoke('Echo', value), value, name)
      }
    })

    test('invoke passes several arguments', async (t) => {
      const app = await startHub(t)
      const client = await connect(t, app, protocol)
      const args = ['text', 42, -1.5, true, null, [1, 'two'], { nested: { list: [1] } }]

      assert.deepEqual(await client.invoke('EchoAll', ...args), args)
      assert.deepEqual(await client.invoke('TypesOf', ...args), ['string', 'number', 'number', 'boolean', 'null', 'array', 'object'])
      assert.deepEqual(await client.invoke('EchoAll'), [])
    })

    test('send runs method without reply', async (t) => {
      const recorded = deferred<unknown[]>()
      const app = await startHub(t, {
        methods: { Record: (_context: HubConnectionContext, ...args: unknown[]) => { recorded.resolve(args) } }
      })
      const client = await connect(t, app, protocol)

      await client.send('Record', 'fire', 1, { and: 'forget' })

      assert.deepEqual(await within(recorded.promise, 10_000, 'the sent invocation'), ['fire', 1, { and: 'forget' }])
      await client.send('NoSuchMethod')
      assert.equal(await client.invoke('Echo', 'still connected'), 'still connected')
    })

    test('records of one message all arrive', async (t) => {
      const app = await startHub(t, {
        methods: {
          Burst (context: HubConnectionContext) {
            for (const step of [1, 2, 3]) void context.clients.caller.send('step', step)
            return 'done'
          }
        }
      })
      const client = await connect(t, app, protocol)
      const steps = new Received<[number]>(client, 'step')

      assert.equal(await client.invoke('Burst'), 'done')
      assert.deepEqual((await steps.waitFor(3)).flat(), [1, 2, 3])
    })

    test('message beside the handshake response arrives', async (t) => {
      // onConnected runs in the turn that queues the handshake response, so both share a message.
      const app = await startHub(t, {
        onConnected: (context: HubConnectionContext) => { void context.clients.caller.send('welcome', 'hello') }
      })
      const client = protocol.configure(new HubConnectionBuilder()
        .withUrl(baseUrl(app) + '/testHub', { skipNegotiation: true, transport: HttpTransportType.WebSockets })
        .configureLogging(LogLevel.None)).build()
      const welcome = deferred<string>()
      client.on('welcome', (text: string) => welcome.resolve(text))
      await client.start()
      t.after(() => client.stop())

      assert.equal(await within(welcome.promise, 10_000, 'the welcome message'), 'hello')
    })

    test('stream yields generator items', async (t) => {
      const app = await startHub(t)
      const client = await connect(t, app, protocol)

      const { items, error } = await collectStream(client.stream<number>('Count', 5))

      assert.equal(error, undefined)
      assert.deepEqual(items, [0, 1, 2, 3, 4])
      assert.deepEqual((await collectStream(client.stream<number>('Count', 0))).items, [])
    })

    test('stream dispose runs generator finally', async (t) => {
      const stopped = deferred()
      const app = await startHub(t, {
        methods: {
          Ticks: async function * () {
            try {
              for (let index = 0; ; index++) {
                yield index
                await delay(5)
              }
            } finally {
              stopped.resolve()
            }
          }
        }
      })
      const client = await connect(t, app, protocol)

      const items: number[] = []
      const subscription = client.stream<number>('Ticks').subscribe({
        next: (item) => {
          items.push(item)
          if (items.length === 3) subscription.dispose()
        },
        complete: () => {},
        error: () => {}
      })

      await within(stopped.promise, 10_000, "the generator's finally block")
      assert.deepEqual(items, [0, 1, 2])
      assert.equal(await client.invoke('Echo', 'after cancel'), 'after cancel')
      assert.deepEqual((await collectStream(client.stream<number>('Count', 3))).items, [0, 1, 2])
    })

    test('throwing stream errors the subscriber', async (t) => {
      const app = await startHub(t, {
        methods: {
          Failing: async function * () {
            yield 1
            yield 2
            throw new Error('internal detail')
          },
          Refusing: async function * () {
            yield 'first'
            throw new HubException('Feed closed')
          }
        }
      })
      const client = await connect(t, app, protocol)

      const failing = await collectStream(client.stream('Failing'))
      assert.deepEqual(failing.items, [1, 2])
      assert.equal(failing.error?.message, 'An error occurred on the server while streaming results.')

      const refusing = await collectStream(client.stream('Refusing'))
      assert.deepEqual(refusing.items, ['first'])
      assert.equal(refusing.error?.message, 'An error occurred on the server while streaming results. HubException: Feed closed')

      assert.equal(await client.invoke('Echo', 'after error'), 'after error')
    })

    test('upload stream sums client items', async (t) => {
      const app = await startHub(t)
      const client = await connect(t, app, protocol)

      const subject = new Subject<number>()
      const sum = client.invoke('Sum', subject)
      for (let value = 1; value <= 10; value++) subject.next(value)
      subject.complete()

      assert.equal(await sum, 55)
      const empty = new Subject<number>()
      const emptySum = client.invoke('Sum', empty)
      empty.complete()
      assert.equal(await emptySum, 0)
    })

    test('uploads follow normal arguments', async (t) => {
      const drain = async (stream: AsyncIterable<unknown>): Promise<unknown[]> => {
        const items: unknown[] = []
        for await (const item of stream) items.push(item)
        return items
      }
      const app = await startHub(t, {
        methods: {
          Collect: async (_context: HubConnectionContext, label: string, count: number, first: AsyncIterable<unknown>, second: AsyncIterable<unknown>) => {
            const [firstItems, secondItems] = await Promise.all([drain(first), drain(second)])
            return { label, count, first: firstItems, second: secondItems }
          }
        }
      })
      const client = await connect(t, app, protocol)

      const first = new Subject<string>()
      const second = new Subject<number>()
      // The official client 10.0.11 sends a Subject that directly follows another Subject as a
      // plain argument, so a plain argument separates the two. The hub still receives both
      // uploads after the plain arguments.
      const result = client.invoke('Collect', 'pair', first, 2, second)
      first.next('a')
      second.next(1)
      first.next('b')
      first.complete()
      second.next(2)
      second.complete()

      assert.deepEqual(await result, { label: 'pair', count: 2, first: ['a', 'b'], second: [1, 2] })
    })

    test('upload feeds a result stream', async (t) => {
      const app = await startHub(t, {
        methods: {
          Doubled: async function * (_context: HubConnectionContext, numbers: AsyncIterable<number>) {
            for await (const value of numbers) yield value * 2
          }
        }
      })
      const client = await connect(t, app, protocol)

      const subject = new Subject<number>()
      const doubled = collectStream(client.stream<number>('Doubled', subject))
      for (const value of [1, 2, 3]) subject.next(value)
      subject.complete()

      assert.deepEqual(await doubled, { items: [2, 4, 6], error: undefined })
    })

    test('upload error reaches hub method', async (t) => {
      const app = await startHub(t, {
        methods: {
          Drain: async (_context: HubConnectionContext, stream: AsyncIterable<unknown>) => {
            const items: unknown[] = []
            try {
              for await (const item of stream) items.push(item)
              return { items, error: null }
            } catch (err) {
              return { items, error: `${(err as Error).name}: ${(err as Error).message}` }
            }
          }
        }
      })
      const client = await connect(t, app, protocol)

      const subject = new Subject<string>()
      const result = client.invoke('Drain', subject)
      subject.next('before')
      subject.error(new Error('client gave up'))

      assert.deepEqual(await result, { items: ['before'], error: 'HubException: client gave up' })
    })

    test('upload backpressure keeps every item', async (t) => {
      const count = 300
      const app = await startHub(t, {
        streamBufferCapacity: 2,
        onConnected: (context: HubConnectionContext, request: FastifyRequest) => {
          context.items.set('socket', request.raw.socket)
        },
        methods: {
          SlowCollect: async (context: HubConnectionContext, stream: AsyncIterable<{ seq: number }>) => {
            // The hub buffers two items and then stops reading the socket. Waiting for that pause
            // before consuming keeps the check below from racing it.
            const socket = context.items.get('socket') as Socket
            const deadline = Date.now() + 10_000
            while (!socket.isPaused() && Date.now() < deadline) await delay(5)
            const pausedWhileFull = socket.isPaused()

            const sequence: number[] = []
            for await (const item of stream) {
              sequence.push(item.seq)
              await delay(1)
            }
            return { pausedWhileFull, sequence }
          }
        }
      })
      const client = await connect(t, app, protocol)

      // About 300 KB in all, more than one socket read returns, so the client's Completion
      // cannot arrive in the same read as the first items and end the upload early.
      const subject = new Subject<{ seq: number, text: string }>()
      const result = client.invoke('SlowCollect', subject)
      for (let seq = 0; seq < count; seq++) subject.next({ seq, text: `item ${seq} `.padEnd(1000, 'x') })
      subject.complete()

      const { pausedWhileFull, sequence } = await within(result, 30_000, 'the slow upload') as { pausedWhileFull: boolean, sequence: number[] }
      assert.equal(pausedWhileFull, true, 'the server stopped reading while the buffer was full')
      assert.deepEqual(sequence, Array.from({ length: count }, (_value, index) => index))
      assert.equal(await client.invoke('Echo', 'after upload'), 'after upload')
    })

    test('unread upload does not stall', async (t) => {
      const app = await startHub(t, {
        streamBufferCapacity: 2,
        methods: { Ignore: () => 'ignored' }
      })
      const client = await connect(t, app, protocol)

      const subject = new Subject<number>()
      assert.equal(await client.invoke('Ignore', subject), 'ignored')
      // Paced, so that the items reach the server in separate reads after the method returned.
      for (let value = 0; value < 10; value++) {
        subject.next(value)
        await delay(10)
      }

      assert.equal(await within(client.invoke('Echo', 'still read'), 5000, 'the Echo after the unread upload'), 'still read')
      subject.complete()
    })

    test('slow upload consumer keeps connection', async (t) => {
      const app = await startHub(t, {
        streamBufferCapacity: 1,
        clientTimeoutInterval: 500,
        methods: {
          HoldFirst: async (_context: HubConnectionContext, stream: AsyncIterable<number>) => {
            const items: number[] = []
            for await (const item of stream) {
              // Holding the first item keeps the buffer full for three client timeouts.
              if (items.length === 0) await delay(1500)
              items.push(item)
            }
            return items
          }
        }
      })
      const client = await connect(t, app, protocol, { keepAliveInterval: 100 })
      let closeError: Error | undefined | 'open' = 'open'
      client.onclose((error) => { closeError = error })

      const subject = new Subject<number>()
      const result = client.invoke('HoldFirst', subject)
      for (let value = 0; value < 5; value++) {
        subject.next(value)
        await delay(10)
      }
      subject.complete()

      assert.deepEqual(await within(result, 10_000, 'the HoldFirst result'), [0, 1, 2, 3, 4])
      assert.equal(closeError, 'open', 'the server closed a client that sent a Ping every 100 ms')
    })

    test('caller client result returns value', async (t) => {
      const app = await startHub(t)
      const client = await connect(t, app, protocol)
      client.on('GetValue', () => 42)
      client.on('Add', (a: number, b: number) => a + b)
      client.on('GetObject', async () => ({ answer: [4, 2] }))

      assert.equal(await client.invoke('AskCaller', 'GetValue'), 42)
      assert.equal(await client.invoke('AskConnection', 'Add', 2, 3), 5)
      assert.deepEqual(await client.invoke('AskCaller', 'GetObject'), { answer: [4, 2] })
    })

    test('hubContext client result returns value', async (t) => {
      const app = await startHub(t)
      const client = await connect(t, app, protocol)
      client.on('GetValue', (offset: number) => 42 + offset)
      const id = await client.invoke('WhoAmI') as string

      assert.equal(await app.backplane.hubContext().clients.client(id).invoke('GetValue', 1), 43)
    })

    test('client handler error rejects result', async (t) => {
      const app = await startHub(t)
      const client = await connect(t, app, protocol)
      client.on('Fail', () => {
        throw new Error('not today')
      })

      const outcome = await client.invoke('AskCallerError', 'Fail') as { code?: string, message?: string }
      assert.equal(outcome.code, 'FST_BACKPLANE_CLIENT_RESULT_ERROR')
      assert.match(outcome.message ?? '', /Error: not today/)

      const missing = await client.invoke('AskCallerError', 'NoHandler') as { code?: string, message?: string }
      assert.equal(missing.code, 'FST_BACKPLANE_CLIENT_RESULT_ERROR')
      assert.match(missing.message ?? '', /Client didn't provide a result\./)
    })

    test('client result times out', async (t) => {
      const app = await startHub(t, { clientResultTimeout: 200 })
      const client = await connect(t, app, protocol)
      client.on('Hang', () => new Promise(() => {}))

      const outcome = await client.invoke('AskCallerError', 'Hang') as { code?: string }

      assert.equal(outcome.code, 'FST_BACKPLANE_CLIENT_RESULT_TIMEOUT')
      assert.equal(await client.invoke('Echo', 'after timeout'), 'after timeout')
    })

    test('disconnect rejects pending client result', async (t) => {
      const app = await startHub(t)
      const client = await connect(t, app, protocol)
      const handlerCalled = deferred()
      client.on('Hang', () => {
        handlerCalled.resolve()
        return new Promise(() => {})
      })
      const id = await client.invoke('WhoAmI') as string

      const pending = app.backplane.hubContext().clients.client(id).invoke('Hang')
      await within(handlerCalled.promise, 10_000, 'the client invocation')
      await client.stop()

      await assert.rejects(within(pending, 10_000, 'the rejection'), { code: 'FST_BACKPLANE_CLIENT_DISCONNECTED' })
    })

    test('client result across Redis instances', async (t) => {
      const redis = await startRedisServer()
      t.after(() => redis.stop())
      const a = await startInstance(t, { backplane: { redis: redis.url }, hub: { methods } })
      const b = await startInstance(t, { backplane: { redis: redis.url }, hub: { methods } })
      const shortTimeout = await startInstance(t, { backplane: { redis: redis.url, clientResultTimeout: 300 }, hub: { methods } })
      const client = await connect(t, a, protocol)
      let hangCalls = 0
      const secondHang = deferred()
      client.on('GetValue', () => 42)
      client.on('Add', (x: number, y: number) => x + y)
      client.on('Fail', () => {
        throw new Error('remote failure')
      })
      client.on('Hang', () => {
        if (++hangCalls === 2) secondHang.resolve()
        return new Promise(() => {})
      })
      const id = await client.invoke('WhoAmI') as string
      const remote = b.backplane.hubContext().clients.client(id)

      assert.equal(await remote.invoke('GetValue'), 42)
      assert.equal(await remote.invoke('Add', 40, 2), 42)
      await assert.rejects(remote.invoke('Fail'), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'FST_BACKPLANE_CLIENT_RESULT_ERROR')
        assert.match(err.message, /Error: remote failure/)
        return true
      })
      await assert.rejects(shortTimeout.backplane.hubContext().clients.client(id).invoke('Hang'), { code: 'FST_BACKPLANE_CLIENT_RESULT_TIMEOUT' })

      const pending = remote.invoke('Hang')
      await within(secondHang.promise, 10_000, 'the second Hang call on the client')
      await client.stop()
      await assert.rejects(within(pending, 10_000, 'the rejection'), { code: 'FST_BACKPLANE_CLIENT_DISCONNECTED' })
    })

    test('oversized message closes with error', async (t) => {
      const app = await startHub(t, { maximumReceiveMessageSize: 1024 })
      const bystander = await connect(t, app, protocol)
      const client = await connect(t, app, protocol)
      const closed = new Promise<Error | undefined>((resolve) => client.onclose(resolve))

      await assert.rejects(client.invoke('Echo', 'x'.repeat(2000)))

      const error = await within(closed, 10_000, 'onclose')
      assert.equal(error?.message, CLOSED_WITH_ERROR)
      assert.equal(await bystander.invoke('Echo', 'unaffected'), 'unaffected')
    })

    test('protocol error Close triggers reconnect', async (t) => {
      const app = await startHub(t, { maximumReceiveMessageSize: 1024 })
      const client = await connect(t, app, protocol, { negotiate: true, reconnectDelays: [0, 100, 200, 400] })
      const reconnecting = deferred<Error | undefined>()
      const reconnected = deferred<string | undefined>()
      client.onreconnecting((error) => reconnecting.resolve(error))
      client.onreconnected((connectionId) => reconnected.resolve(connectionId))
      const firstId = await client.invoke('WhoAmI') as string

      client.send('Echo', 'x'.repeat(2000)).catch(() => {})

      assert.equal((await within(reconnecting.promise, 10_000, 'onreconnecting'))?.message, CLOSED_WITH_ERROR)
      const secondId = await within(reconnected.promise, 10_000, 'onreconnected')
      assert.equal(typeof secondId, 'string')
      assert.notEqual(secondId, firstId)
      assert.equal(await client.invoke('WhoAmI'), secondId)
    })

    test('shutdown Close starts reconnecting', async (t) => {
      const app = await startHub(t)
      const client = await connect(t, app, protocol, { reconnectDelays: [0, 50] })
      const reconnecting = deferred<Error | undefined>()
      const closed = deferred<Error | undefined>()
      client.onreconnecting((error) => reconnecting.resolve(error))
      client.onclose((error) => closed.resolve(error))

      await app.close()

      assert.equal(await within(reconnecting.promise, 10_000, 'onreconnecting'), undefined)
      // Nothing listens any more, so both retries fail and the client gives up.
      await within(closed.promise, 10_000, 'onclose after the retries')
    })

    test('negotiated client works end to end', async (t) => {
      const app = await startHub(t)
      const client = await connect(t, app, protocol, { negotiate: true })

      assert.equal(typeof client.connectionId, 'string')
      assert.equal(await client.invoke('WhoAmI'), client.connectionId)
      assert.equal(await client.invoke('Echo', 'negotiated'), 'negotiated')
    })

    test('negotiate on A, connect on B', async (t) => {
      const bus = new InProcessBus()
      const a = await startHub(t, { negotiateSecret: SECRET }, { bus })
      const b = await startHub(t, { negotiateSecret: SECRET }, { bus })
      const httpClient = new NegotiateElsewhereHttpClient(baseUrl(b), baseUrl(a))

      const client = await connect(t, b, protocol, { negotiate: true, httpClient })

      assert.deepEqual(httpClient.sentUrls, [baseUrl(a) + '/testHub/negotiate?negotiateVersion=1'])
      assert.equal(await client.invoke('WhoAmI'), client.connectionId)
      assert.equal(await client.invoke('Echo', 'on B'), 'on B')
    })

    test('bearer token header sets user', async (t) => {
      const app = await startHub(t, { authenticate: (_request, token) => token?.startsWith('user-') === true ? token.slice(5) : false })

      const direct = await connect(t, app, protocol, { accessToken: 'user-alice' })
      assert.equal(await direct.invoke('WhoIsUser'), 'alice')

      const negotiated = await connect(t, app, protocol, { accessToken: 'user-bob', negotiate: true })
      assert.equal(await negotiated.invoke('WhoIsUser'), 'bob')
    })

    test('parallel invocations overlap', async (t) => {
      let running = 0
      let maximumRunning = 0
      const events: string[] = []
      const twoRunning = deferred()
      const app = await startHub(t, {
        maximumParallelInvocationsPerClient: 2,
        methods: {
          Slow: async (_context: HubConnectionContext, id: string) => {
            running++
            maximumRunning = Math.max(maximumRunning, running)
            events.push(`start ${id}`)
            if (running === 2) twoRunning.resolve()
            // Without parallelism this waits out the bound and the checks below fail.
            await Promise.race([twoRunning.promise, delay(10_000, undefined, { ref: false })])
            running--
            events.push(`end ${id}`)
            return id
          }
        }
      })
      const client = await connect(t, app, protocol)

      const results = await Promise.all(['a', 'b', 'c'].map((id) => client.invoke('Slow', id)))

      assert.deepEqual(results, ['a', 'b', 'c'])
      assert.equal(maximumRunning, 2)
      assert.deepEqual(events.slice(0, 2), ['start a', 'start b'])
      assert.ok(events.indexOf('start c') > events.indexOf('end a'), `the third invocation waited for a free slot: ${events.join(', ')}`)
    })
  })
}

describe('hub HTTP endpoints', () => {
  test('negotiate on A, WebSocket on B', async (t) => {
    const bus = new InProcessBus()
    const a = await startHub(t, { negotiateSecret: SECRET }, { bus })
    const b = await startHub(t, { negotiateSecret: SECRET }, { bus })

    const { status, body } = await negotiate(a)
    assert.equal(status, 200)
    assert.equal(body.negotiateVersion, 1)
    assert.deepEqual(body.availableTransports, [{ transport: 'WebSockets', transferFormats: ['Text', 'Binary'] }])

    const client = await connectRaw(t, b, `?id=${encodeURIComponent(String(body.connectionToken))}`)
    assert.equal(await invokeRaw(client, 'WhoAmI'), body.connectionId)
  })

  test('connection token is single-use', async (t) => {
    const bus = new InProcessBus()
    const a = await startHub(t, { negotiateSecret: SECRET }, { bus })
    const b = await startHub(t, { negotiateSecret: SECRET }, { bus })
    const { body } = await negotiate(a)
    const query = `?id=${encodeURIComponent(String(body.connectionToken))}`

    await connectRaw(t, b, query)

    for (const [name, app] of [['B', b], ['A', a]] as const) {
      const second = await requestUpgrade(hubWebSocketUrl(app, query))
      assert.equal(second.status, 409, `second use on ${name}`)
      assert.equal((second.body as { code?: string }).code, 'FST_BACKPLANE_CONNECTION_TOKEN_REUSED', `second use on ${name}`)
    }
  })

  test('invalid connection tokens get 404', async (t) => {
    const app = await startHub(t, { negotiateSecret: SECRET })
    const { body } = await negotiate(app)
    const issued = String(body.connectionToken)
    const [issuedBody, issuedSignature] = issued.split('.') as [string, string]
    const future = Date.now() + 60_000
    const tamperedBody = Buffer.from(JSON.stringify({ hub: '/testHub', connectionId: 'chosen-by-attacker', expiresAt: future })).toString('base64url')

    const cases: Array<[string, string]> = [
      ['empty', ''],
      ['no signature', 'not-a-token'],
      ['three parts', `${issued}.extra`],
      ['signature of another secret', signToken(JSON.stringify({ hub: '/testHub', connectionId: 'x', expiresAt: future }), 'another-secret-0123456789abcdef')],
      ['tampered payload', `${tamperedBody}.${issuedSignature}`],
      ['truncated signature', `${issuedBody}.${issuedSignature.slice(0, -2)}`],
      ['expired', signToken(JSON.stringify({ hub: '/testHub', connectionId: 'x', expiresAt: Date.now() - 1000 }))],
      ['another hub', signToken(JSON.stringify({ hub: '/otherHub', connectionId: 'x', expiresAt: future }))],
      ['payload not JSON', signToken('not json')]
    ]
    for (const [name, token] of cases) {
      const response = await requestUpgrade(hubWebSocketUrl(app, `?id=${encodeURIComponent(token)}`))
      assert.equal(response.status, 404, name)
      assert.equal((response.body as { code?: string }).code, 'FST_BACKPLANE_INVALID_CONNECTION_TOKEN', name)
    }

    const valid = await requestUpgrade(hubWebSocketUrl(app, `?id=${encodeURIComponent(issued)}`))
    assert.equal(valid.status, 101, 'the issued token still works after the rejections')
  })

  test('token expires after its lifetime', async (t) => {
    const app = await startHub(t, { negotiateSecret: SECRET, connectionTokenLifetime: 100 })
    const { body } = await negotiate(app)

    await delay(300)

    const response = await requestUpgrade(hubWebSocketUrl(app, `?id=${encodeURIComponent(String(body.connectionToken))}`))
    assert.equal(response.status, 404)
    assert.equal((response.body as { code?: string }).code, 'FST_BACKPLANE_INVALID_CONNECTION_TOKEN')
  })

  test('token without shared secret stays local', async (t) => {
    const bus = new InProcessBus()
    const logLines: string[] = []
    const a = await startHub(t, {}, { bus, logLines })
    const b = await startHub(t, {}, { bus })

    const { body } = await negotiate(a)
    await negotiate(a)

    const warnings = logLines
      .map((line) => JSON.parse(line) as { level: number, msg: string })
      .filter((line) => line.level === 40 && line.msg.includes('no negotiateSecret'))
    assert.equal(warnings.length, 1, 'warnings about the missing secret after two negotiations')

    const query = `?id=${encodeURIComponent(String(body.connectionToken))}`
    const onB = await requestUpgrade(hubWebSocketUrl(b, query))
    assert.equal(onB.status, 404)
    assert.equal((onB.body as { code?: string }).code, 'FST_BACKPLANE_INVALID_CONNECTION_TOKEN')

    const onA = await requestUpgrade(hubWebSocketUrl(a, query))
    assert.equal(onA.status, 101, 'the issuing instance accepts its own token')
  })

  test('access token sets user id', async (t) => {
    const app = await startHub(t, { authenticate: (_request, token) => token?.startsWith('user-') === true ? token.slice(5) : false })

    const byQuery = await connectRaw(t, app, '?access_token=user-alice')
    assert.equal(await invokeRaw(byQuery, 'WhoIsUser'), 'alice')

    const byHeader = await connectRaw(t, app, '', { authorization: 'Bearer user-bob' })
    assert.equal(await invokeRaw(byHeader, 'WhoIsUser'), 'bob')

    const { status } = await negotiate(app, { authorization: 'Bearer user-carol' })
    assert.equal(status, 200)
  })

  test('rejected token gets 401', async (t) => {
    let connected = 0
    const app = await startHub(t, {
      onConnected: () => { connected++ },
      authenticate: (_request, token) => {
        if (token === 'throws') throw new Error('token service down')
        return token?.startsWith('user-') === true ? token.slice(5) : false
      }
    })

    const cases: Array<[string, string, Record<string, string>]> = [
      ['no token', '', {}],
      ['bad query token', '?access_token=intruder', {}],
      ['bad header token', '', { authorization: 'Bearer intruder' }],
      ['authenticate throws', '?access_token=throws', {}]
    ]
    for (const [name, query, headers] of cases) {
      const response = await requestUpgrade(hubWebSocketUrl(app, query), headers)
      assert.equal(response.status, 401, name)
      assert.equal((response.body as { code?: string }).code, 'FST_BACKPLANE_UNAUTHORIZED', name)
    }

    const negotiated = await negotiate(app, { authorization: 'Bearer intruder' })
    assert.equal(negotiated.status, 401)
    assert.equal(negotiated.body.code, 'FST_BACKPLANE_UNAUTHORIZED')
    assert.equal(connected, 0)
  })

  test('plain HTTP on hub path gets 400', async (t) => {
    const app = await startHub(t)

    for (const method of ['GET', 'POST', 'DELETE']) {
      const response = await fetch(baseUrl(app) + '/testHub', { method })
      assert.equal(response.status, 400, method)
      assert.equal((await response.json() as { code?: string }).code, 'FST_BACKPLANE_WEBSOCKETS_ONLY', method)
    }
  })

  test('broadcast reaches both protocols', async (t) => {
    const app = await startHub(t)
    const [json, messagePack] = clientProtocols as [ClientProtocol, ClientProtocol]
    const jsonClient = await connect(t, app, json)
    const messagePackClient = await connect(t, app, messagePack)
    const jsonNews = new Received(jsonClient, 'news')
    const messagePackNews = new Received(messagePackClient, 'news')
    const args = ['text', 7, -0.5, true, null, [1, 'two'], { nested: { list: [true] } }]

    await app.broadcast('news', args)

    assert.deepEqual(await jsonNews.waitFor(1), [args])
    assert.deepEqual(await messagePackNews.waitFor(1), [args])
  })
})
