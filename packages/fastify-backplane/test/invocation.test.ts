import assert from 'node:assert/strict'
import { once } from 'node:events'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import type { HubConnection } from '@microsoft/signalr'
import type { FastifyInstance } from 'fastify'
import { HubException } from '../src/index.js'
import type { HubConnectionContext, HubOptions } from '../src/index.js'
import { RawHubClient, RS } from './helpers/raw-hub.js'
import { connectClient } from './helpers/signalr.js'
import { startInstance } from './helpers/instances.js'
import { deferred } from './helpers/promises.js'

const CLOSED_WITH_ERROR = '{"type":7,"error":"Connection closed with an error.","allowReconnect":true}'

const methods = {
  Echo: (_context: HubConnectionContext, value: unknown) => value,
  Nothing: () => {},
  Null: () => null,
  Boom: () => {
    throw new Error('database password is hunter2')
  },
  Reject: async () => {
    throw new HubException('Name is taken')
  },
  BadInput: () => {
    throw new TypeError('bad input')
  },
  WhoAmI: (context: HubConnectionContext) => context.connectionId
}

async function startHub (t: TestContext, options: Partial<HubOptions> = {}): Promise<FastifyInstance> {
  return await startInstance(t, { hub: { methods, ...options } })
}

async function connect (t: TestContext, app: FastifyInstance): Promise<HubConnection> {
  const client = await connectClient(app, '/testHub')
  t.after(() => client.stop())
  return client
}

async function connectRaw (t: TestContext, app: FastifyInstance): Promise<RawHubClient> {
  const client = await RawHubClient.connectAndHandshake(app)
  t.after(() => client.close())
  return client
}

test('unknown method rejects, connection survives', async (t) => {
  const app = await startHub(t)
  const client = await connect(t, app)

  await assert.rejects(client.invoke('Nope'), {
    message: "Failed to invoke 'Nope' due to an error on the server. HubException: Method does not exist."
  })

  assert.equal(await client.invoke('Echo', 'next'), 'next')
})

test('throwing method gets generic error', async (t) => {
  const app = await startHub(t)
  const client = await connect(t, app)

  await assert.rejects(client.invoke('Boom'), {
    message: "An unexpected error occurred invoking 'Boom' on the server."
  })

  assert.equal(await client.invoke('Echo', 'next'), 'next')
})

test('HubException message reaches client', async (t) => {
  const app = await startHub(t)
  const client = await connect(t, app)

  await assert.rejects(client.invoke('Reject'), {
    message: "An unexpected error occurred invoking 'Reject' on the server. HubException: Name is taken"
  })
})

test('detailed errors show type and message', async (t) => {
  const app = await startHub(t, { enableDetailedErrors: true })
  const client = await connect(t, app)

  await assert.rejects(client.invoke('BadInput'), {
    message: "An unexpected error occurred invoking 'BadInput' on the server. TypeError: bad input"
  })
})

test('method names match case-insensitively', async (t) => {
  const app = await startHub(t)
  const client = await connect(t, app)

  for (const name of ['echo', 'ECHO', 'eChO']) {
    assert.equal(await client.invoke(name, name), name, name)
  }
})

test('error text uses declared method name', async (t) => {
  // ASP.NET Core SignalR resolves the target case-insensitively to the declared method, and
  // its error texts show the declared name.
  const app = await startHub(t)
  const client = await connect(t, app)

  await assert.rejects(client.invoke('boom'), {
    message: "An unexpected error occurred invoking 'Boom' on the server."
  })
})

test('Object.prototype names are not methods', async (t) => {
  const app = await startHub(t)
  const client = await connect(t, app)

  for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__']) {
    await assert.rejects(client.invoke(name), {
      message: `Failed to invoke '${name}' due to an error on the server. HubException: Method does not exist.`
    }, name)
  }
  assert.equal(await client.invoke('Echo', 'next'), 'next')
})

test('send without invocationId gets no Completion', async (t) => {
  let calls = 0
  const app = await startInstance(t, { hub: { methods: { Count: () => ++calls } } })
  const client = await connectRaw(t, app)

  client.sendMessages(
    { type: 1, target: 'Count', arguments: [] },
    { type: 1, invocationId: '2', target: 'Count', arguments: [] }
  )

  // The invocation with an id ran second, so a Completion for the first would come before it.
  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: '2', result: 2 })
  assert.equal(calls, 2)
})

test('send of failing method gets no Completion', async (t) => {
  const app = await startHub(t)
  const client = await connectRaw(t, app)

  client.sendMessages(
    { type: 1, target: 'Boom', arguments: [] },
    { type: 1, target: 'Nope', arguments: [] },
    { type: 1, invocationId: '3', target: 'Echo', arguments: ['last'] }
  )

  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: '3', result: 'last' })
})

test('void method completes without result', async (t) => {
  const app = await startHub(t)
  const raw = await connectRaw(t, app)
  const client = await connect(t, app)

  raw.sendMessages({ type: 1, invocationId: '1', target: 'Nothing', arguments: [] })
  assert.equal(await raw.nextRecord(), '{"type":3,"invocationId":"1"}')

  raw.sendMessages({ type: 1, invocationId: '2', target: 'Null', arguments: [] })
  assert.equal(await raw.nextRecord(), '{"type":3,"invocationId":"2","result":null}')

  assert.equal(await client.invoke('Nothing'), undefined)
})

test('streaming invocation of plain method', async (t) => {
  const app = await startHub(t)
  const client = await connectRaw(t, app)

  client.sendMessages({ type: 4, invocationId: '1', target: 'Echo', arguments: ['x'] })

  assert.deepEqual(await client.nextMessage(), {
    type: 3,
    invocationId: '1',
    error: "The client attempted to invoke the non-streaming 'Echo' method with a streaming invocation."
  })
})

for (const [name, message] of [
  ['Invocation without target', '{"type":1,"arguments":[]}'],
  ['Invocation with only a type', '{"type":1}'],
  ['message that is not JSON', 'not json'],
  ['message that is an array', '[1,2]'],
  ['message without type', '{"target":"Echo","arguments":[]}']
] as const) {
  test(`${name} closes with error`, async (t) => {
    const app = await startHub(t)
    const bystander = await connect(t, app)
    const client = await connectRaw(t, app)

    client.send(message + RS)

    assert.equal(await client.nextRecord(), CLOSED_WITH_ERROR)
    await client.closed
    assert.equal(await bystander.invoke('Echo', 'unaffected'), 'unaffected')
  })
}

test('oversized message closes only its connection', async (t) => {
  const app = await startHub(t, { maximumReceiveMessageSize: 1024 })
  const bystander = await connect(t, app)
  const sender = await connect(t, app)
  const senderClosed = new Promise<Error | undefined>((resolve) => sender.onclose(resolve))

  await assert.rejects(sender.invoke('Echo', 'x'.repeat(2000)))

  const error = await senderClosed
  assert.equal(error?.message, 'Server returned an error on close: Connection closed with an error.')
  assert.equal(await bystander.invoke('Echo', 'unaffected'), 'unaffected')
})

test('oversized unfinished message closes connection', async (t) => {
  const disconnected = deferred<Error | undefined>()
  const app = await startHub(t, {
    maximumReceiveMessageSize: 1024,
    onDisconnected: (_context, error) => disconnected.resolve(error)
  })
  const client = await connectRaw(t, app)

  client.send('{"type":1,"target":"Echo","arguments":["' + 'x'.repeat(2000))

  assert.equal(await client.nextRecord(), CLOSED_WITH_ERROR)
  await client.closed
  const error = await disconnected.promise as Error & { code?: string }
  assert.equal(error?.code, 'FST_BACKPLANE_MESSAGE_TOO_LARGE')
})

test('message of maximum size accepted', async (t) => {
  const maximum = 1024
  const app = await startHub(t, { maximumReceiveMessageSize: maximum })
  const client = await connectRaw(t, app)

  const empty = JSON.stringify({ type: 1, invocationId: '1', target: 'Echo', arguments: [''] })
  const value = 'x'.repeat(maximum - Buffer.byteLength(empty))
  const record = JSON.stringify({ type: 1, invocationId: '1', target: 'Echo', arguments: [value] })
  assert.equal(Buffer.byteLength(record), maximum)

  // Sent in two frames, so the first part waits in the buffer at its full size.
  client.send(record)
  client.send(RS)

  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: '1', result: value })
})

test('keep-alive sends Ping messages', async (t) => {
  const app = await startHub(t, { keepAliveInterval: 100 })
  const client = await connectRaw(t, app)

  assert.equal(await client.nextRecord(), '{"type":6}')
  assert.equal(await client.nextRecord(), '{"type":6}')
})

test('no keep-alive Ping during traffic', async (t) => {
  const app = await startHub(t, { keepAliveInterval: 200 })
  const client = await connectRaw(t, app)

  // A broadcast every 20 ms for 800 ms, four keep-alive intervals. Only a stall of about 200 ms
  // between two broadcasts would let a Ping in.
  for (let i = 0; i < 40; i++) {
    await app.broadcast('tick', [i])
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  for (let i = 0; i < 40; i++) {
    assert.equal(await client.nextRecord(), JSON.stringify({ type: 1, target: 'tick', arguments: [i] }))
  }
  assert.equal(await client.nextRecord(), '{"type":6}')
})

test('silent client times out', async (t) => {
  const disconnected = deferred<Error | undefined>()
  const app = await startHub(t, {
    clientTimeoutInterval: 300,
    onDisconnected: (_context, error) => disconnected.resolve(error)
  })
  const started = Date.now()
  const client = await connectRaw(t, app)

  assert.equal(await client.nextRecord(), CLOSED_WITH_ERROR)
  await client.closed
  assert.ok(Date.now() - started >= 300, `closed after ${Date.now() - started} ms, before the 300 ms timeout`)
  const error = await disconnected.promise as Error & { code?: string }
  assert.equal(error?.code, 'FST_BACKPLANE_CLIENT_TIMEOUT')
})

test('pinging client does not time out', async (t) => {
  const app = await startHub(t, { clientTimeoutInterval: 300 })
  const client = await connectRaw(t, app)

  // Eight Pings 75 ms apart keep the connection busy for twice the timeout.
  for (let i = 0; i < 8; i++) {
    client.sendMessages({ type: 6 })
    await new Promise((resolve) => setTimeout(resolve, 75))
  }

  client.sendMessages({ type: 1, invocationId: '1', target: 'Echo', arguments: ['alive'] })
  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: '1', result: 'alive' })
})

test('connection hooks get connection id', async (t) => {
  const connected: string[] = []
  const disconnected = deferred<{ connectionId: string, error: Error | undefined }>()
  const app = await startHub(t, {
    onConnected: (context) => { connected.push(context.connectionId) },
    onDisconnected: (context, error) => disconnected.resolve({ connectionId: context.connectionId, error })
  })
  const client = await connectClient(app, '/testHub')

  const id = await client.invoke('WhoAmI') as string
  assert.equal(typeof id, 'string')
  assert.deepEqual(connected, [id])

  await client.stop()
  const closed = await disconnected.promise
  assert.equal(closed.connectionId, id)
  assert.equal(closed.error, undefined)
})

test('onDisconnected gets protocol error', async (t) => {
  const disconnected = deferred<Error | undefined>()
  const app = await startHub(t, {
    onDisconnected: (_context, error) => disconnected.resolve(error)
  })
  const client = await connectRaw(t, app)

  client.send('{"type":1}' + RS)

  const error = await disconnected.promise as Error & { code?: string }
  assert.equal(error?.code, 'FST_BACKPLANE_PROTOCOL_ERROR')
})

test('invocations wait for onConnected', async (t) => {
  const gate = deferred()
  const app = await startInstance(t, {
    hub: {
      onConnected: async (context) => {
        await gate.promise
        context.items.set('ready', true)
      },
      methods: { IsReady: (context: HubConnectionContext) => context.items.get('ready') === true }
    }
  })
  const client = await RawHubClient.connect(app)
  t.after(() => client.close())

  // The invocation arrives with the handshake, so the server has queued it by the time the
  // handshake response reaches the client.
  client.send('{"protocol":"json","version":1}' + RS + JSON.stringify({ type: 1, invocationId: '1', target: 'IsReady', arguments: [] }) + RS)
  assert.equal(await client.nextRecord(), '{}')
  gate.resolve()

  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: '1', result: true })
})

test('onConnected failure closes connection', async (t) => {
  let invoked = false
  const disconnected = deferred<Error | undefined>()
  const app = await startInstance(t, {
    hub: {
      onConnected: () => {
        throw new Error('database is down')
      },
      onDisconnected: (_context, error) => { disconnected.resolve(error) },
      methods: { Mark: () => { invoked = true } }
    }
  })
  const client = await RawHubClient.connect(app)
  t.after(() => client.close())

  client.send('{"protocol":"json","version":1}' + RS + JSON.stringify({ type: 1, invocationId: '1', target: 'Mark', arguments: [] }) + RS)

  await client.closed
  assert.deepEqual(client.records, ['{}', '{"type":7,"error":"Connection closed with an error."}'])
  assert.equal(invoked, false)
  assert.equal((await disconnected.promise)?.message, 'database is down', 'onDisconnected receives the error')
})

test('invocations run one at a time', async (t) => {
  const events: string[] = []
  const firstStarted = deferred()
  const gate = deferred()
  const app = await startInstance(t, {
    hub: {
      methods: {
        Step: async (_context: HubConnectionContext, id: string) => {
          events.push(`start ${id}`)
          if (id === '1') {
            firstStarted.resolve()
            await gate.promise
          }
          events.push(`end ${id}`)
          return id
        }
      }
    }
  })
  const client = await connectRaw(t, app)

  client.sendMessages(
    { type: 1, invocationId: '1', target: 'Step', arguments: ['1'] },
    { type: 1, invocationId: '2', target: 'Step', arguments: ['2'] }
  )
  await firstStarted.promise
  assert.deepEqual(events, ['start 1'])
  gate.resolve()

  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: '1', result: '1' })
  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: '2', result: '2' })
  assert.deepEqual(events, ['start 1', 'end 1', 'start 2', 'end 2'])
})

test('queue limit counts waiting invocations', async (t) => {
  // One invocation runs at a time by default, and maximumQueuedInvocationsPerClient counts the
  // invocations that wait behind it: with 2, the second and third wait and the fourth is rejected.
  const started = deferred()
  const gate = deferred()
  const app = await startInstance(t, {
    hub: {
      maximumQueuedInvocationsPerClient: 2,
      methods: {
        Block: async (_context: HubConnectionContext, id: string) => {
          if (id === '1') {
            started.resolve()
            await gate.promise
          }
          return id
        }
      }
    }
  })
  const client = await connectRaw(t, app)

  client.sendMessages({ type: 1, invocationId: '1', target: 'Block', arguments: ['1'] })
  await started.promise
  client.sendMessages(
    { type: 1, invocationId: '2', target: 'Block', arguments: ['2'] },
    { type: 1, invocationId: '3', target: 'Block', arguments: ['3'] },
    { type: 1, invocationId: '4', target: 'Block', arguments: ['4'] }
  )

  assert.deepEqual(await client.nextMessage(), {
    type: 3,
    invocationId: '4',
    error: "An unexpected error occurred invoking 'Block' on the server. HubException: Too many invocations are waiting on this connection."
  })
  gate.resolve()
  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: '1', result: '1' })
  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: '2', result: '2' })
  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: '3', result: '3' })
})

test('client Close message ends connection', async (t) => {
  const app = await startHub(t)
  const client = await connectRaw(t, app)

  client.sendMessages({ type: 7 })

  const closed = await client.closed
  assert.equal(closed.code, 1000)
})

test('onDisconnected runs once per connection', async (t) => {
  let calls = 0
  const disconnected = deferred()
  const app = await startHub(t, {
    onDisconnected: () => {
      calls++
      disconnected.resolve()
    }
  })
  const client = await connectRaw(t, app)

  client.socket.terminate()
  await once(client.socket, 'close')
  await disconnected.promise

  const probe = await connect(t, app)
  assert.equal(await probe.invoke('Echo', 'after'), 'after')
  assert.equal(calls, 1)
})
