import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import { HttpTransportType, HubConnectionBuilder, LogLevel, Subject } from '@microsoft/signalr'
import type { HubConnection } from '@microsoft/signalr'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import { backplane, hub, HubException } from '../src/index.js'
import type { HubConnectionContext, HubOptions } from '../src/index.js'
import { startInstance } from './helpers/instances.js'
import { RawHubClient } from './helpers/raw-hub.js'
import { baseUrl } from './helpers/signalr.js'
import { collectProcessErrors } from './helpers/process-errors.js'

const UNAUTHORIZED = (target: string): string => `Failed to invoke '${target}' because user is unauthorized`

async function startHub (t: TestContext, options: Partial<HubOptions>, logLines?: string[]): Promise<FastifyInstance> {
  return await startInstance(t, {
    ...(logLines === undefined ? {} : { logLines }),
    hub: { authenticate: (_request, token) => token, ...options }
  })
}

async function connectAs (t: TestContext, app: FastifyInstance, user?: string): Promise<HubConnection> {
  const client = new HubConnectionBuilder()
    .withUrl(baseUrl(app) + '/testHub', {
      skipNegotiation: true,
      transport: HttpTransportType.WebSockets,
      ...(user === undefined ? {} : { accessTokenFactory: () => user })
    })
    .configureLogging(LogLevel.None)
    .build()
  await client.start()
  t.after(() => client.stop())
  return client
}

test('authorize denial uses ASP.NET text', async (t) => {
  const calls: Array<[string | undefined, string, unknown[]]> = []
  const app = await startHub(t, {
    authorize: (context, method, args) => {
      calls.push([context.userId, method, args])
      return method !== 'Secret'
    },
    methods: {
      Echo: (_context: HubConnectionContext, value: unknown) => value,
      Secret: () => 'classified'
    }
  })
  const client = await connectAs(t, app, 'alice')

  await assert.rejects(client.invoke('secret', 1, 'two'), { message: UNAUTHORIZED('secret') })
  assert.equal(await client.invoke('Echo', 'open'), 'open')
  assert.deepEqual(calls, [['alice', 'Secret', [1, 'two']], ['alice', 'Echo', ['open']]])
})

test('only true authorizes', async (t) => {
  const app = await startHub(t, {
    authorize: () => 'yes' as unknown as boolean,
    methods: { Echo: (_context: HubConnectionContext, value: unknown) => value }
  })
  const client = await connectAs(t, app)

  await assert.rejects(client.invoke('Echo', 'x'), { message: UNAUTHORIZED('Echo') })
})

test('per-method authorize', async (t) => {
  let ran = 0
  const app = await startHub(t, {
    authorize: async (_context, method) => method !== 'Banned',
    methods: {
      Banned: () => {},
      Admin: {
        handler: () => { ran++ },
        authorize: (context) => context.userId === 'admin'
      }
    }
  })
  const admin = await connectAs(t, app, 'admin')
  const user = await connectAs(t, app, 'user')

  await admin.invoke('Admin')
  await assert.rejects(user.invoke('Admin'), { message: UNAUTHORIZED('Admin') })
  await assert.rejects(admin.invoke('Banned'), { message: UNAUTHORIZED('Banned') })
  assert.equal(ran, 1)
})

test('authorize errors reach client', async (t) => {
  const lines: string[] = []
  const app = await startHub(t, {
    authorize: (_context, method) => {
      if (method === 'Exceptional') throw new HubException('Your plan does not include this.')
      if (method === 'Broken') throw new Error('policy database password is hunter2')
      return true
    },
    methods: { Exceptional: () => {}, Broken: () => {} }
  }, lines)
  const client = await connectAs(t, app)

  await assert.rejects(client.invoke('Exceptional'), {
    message: "An unexpected error occurred invoking 'Exceptional' on the server. HubException: Your plan does not include this."
  })
  await assert.rejects(client.invoke('Broken'), { message: "An unexpected error occurred invoking 'Broken' on the server." })
  const failures = lines.map((line) => JSON.parse(line) as { level: number, msg: string }).filter((entry) => entry.msg === 'hub authorization failed')
  assert.deepEqual(failures.map((entry) => entry.level), [30, 50])
})

test('denied send gets no Completion', async (t) => {
  let ran = false
  const app = await startHub(t, {
    authorize: (_context, method) => method === 'Echo',
    methods: { Echo: (_context: HubConnectionContext, value: unknown) => value, Mark: () => { ran = true } }
  })
  const client = await RawHubClient.connectAndHandshake(app)
  t.after(() => client.close())

  client.sendMessages(
    { type: 1, target: 'Mark', arguments: [] },
    { type: 1, invocationId: 'probe', target: 'Echo', arguments: ['probe'] }
  )

  assert.deepEqual(await client.nextMessage(), { type: 3, invocationId: 'probe', result: 'probe' })
  assert.equal(ran, false)
})

test('authorizeGroup denies join', async (t) => {
  const app = await startHub(t, {
    authorizeGroup: (context, group) => group.startsWith(`${context.userId}:`),
    methods: { Join: async (context: HubConnectionContext, group: string) => { await context.groups.add(group) } }
  })
  const alice = await connectAs(t, app, 'alice')

  await alice.invoke('Join', 'alice:notes')
  await assert.rejects(alice.invoke('Join', 'bob:notes'), {
    message: 'An unexpected error occurred invoking \'Join\' on the server. HubException: FST_BACKPLANE_GROUP_FORBIDDEN: Joining group "bob:notes" is not allowed for this connection: the hub\'s authorizeGroup option did not return true.'
  })

  const context = app.backplane.hubContext()
  assert.equal((await context.count({ group: 'alice:notes' })).connections, 1)
  assert.equal((await context.count({ group: 'bob:notes' })).connections, 0)
})

test('ignored denied join is handled', async (t) => {
  const unhandled = collectProcessErrors(t)
  const app = await startHub(t, {
    authorizeGroup: () => false,
    methods: {
      JoinAndForget: (context: HubConnectionContext, group: string) => {
        void context.groups.add(group)
        return 'returned'
      }
    }
  })
  const client = await connectAs(t, app)

  assert.equal(await client.invoke('JoinAndForget', 'g'), 'returned')
  await delay(50)
  assert.deepEqual(unhandled, [])
})

test('authorizeGroup applies in onConnected', async (t) => {
  const outcomes: string[] = []
  const app = await startHub(t, {
    authorizeGroup: (_context, group) => group !== 'admins',
    onConnected: async (context) => {
      for (const group of ['everyone', 'admins']) {
        await context.groups.add(group).then(() => outcomes.push(`${group} joined`), (err: Error & { code?: string }) => outcomes.push(`${group} ${err.code}`))
      }
    },
    methods: { Echo: (_context: HubConnectionContext, value: unknown) => value }
  })
  const client = await connectAs(t, app)
  await client.invoke('Echo', 'ready')

  assert.deepEqual(outcomes, ['everyone joined', 'admins FST_BACKPLANE_GROUP_FORBIDDEN'])
})

test('schema rejects with failing path', async (t) => {
  const notes: unknown[] = []
  let authorized = 0
  const app = await startHub(t, {
    authorize: () => {
      authorized++
      return true
    },
    methods: {
      AddNote: {
        handler: (_context: HubConnectionContext, note: unknown) => { notes.push(note) },
        schema: {
          type: 'array',
          items: [{
            type: 'object',
            properties: { text: { type: 'string', maxLength: 10 }, color: { type: 'string', default: 'yellow' } },
            required: ['text'],
            additionalProperties: false
          }],
          minItems: 1,
          maxItems: 1
        }
      }
    }
  })
  const client = await connectAs(t, app)
  const rejected = (path: string, problem: string): { message: string } => ({
    message: `Failed to invoke 'AddNote'. FST_BACKPLANE_INVALID_ARGUMENTS: Invalid arguments for AddNote: ${path} ${problem}. Send arguments that match the method's schema.`
  })

  await assert.rejects(client.invoke('AddNote', { text: 5 }), rejected('arguments/0/text', 'must be string'))
  await assert.rejects(client.invoke('AddNote', {}), rejected('arguments/0', "must have required property 'text'"))
  await assert.rejects(client.invoke('AddNote', { text: 'x'.repeat(11) }), rejected('arguments/0/text', 'must NOT have more than 10 characters'))
  await assert.rejects(client.invoke('AddNote', { text: 'hi', admin: true }), rejected('arguments/0', 'must NOT have additional properties'))
  await assert.rejects(client.invoke('AddNote', { text: 'hi' }, 'extra'), rejected('arguments', 'must NOT have more than 1 items'))
  await assert.rejects(client.invoke('AddNote'), rejected('arguments', 'must NOT have fewer than 1 items'))
  assert.deepEqual(notes, [])
  assert.equal(authorized, 0, 'authorize runs only after the schema passed')

  await client.invoke('AddNote', { text: 'hi' })
  assert.deepEqual(notes, [{ text: 'hi', color: 'yellow' }])
})

test('schema covers arguments, not uploads', async (t) => {
  const app = await startHub(t, {
    methods: {
      Total: {
        handler: async (_context: HubConnectionContext, label: string, numbers: AsyncIterable<number>) => {
          let sum = 0
          for await (const value of numbers) sum += value
          return `${label}=${sum}`
        },
        schema: { type: 'array', items: [{ type: 'string' }], minItems: 1, maxItems: 1 }
      }
    }
  })
  const client = await connectAs(t, app)

  const subject = new Subject<number>()
  const total = client.invoke('Total', 'sum', subject)
  subject.next(2)
  subject.next(3)
  subject.complete()

  assert.equal(await total, 'sum=5')
})

test('invalid method definitions fail ready', async (t) => {
  const invalid: Array<HubOptions['methods']> = [
    { Bad: { handler: () => {}, schema: { type: 'nope' } } },
    { Bad: { handler: () => {}, schema: { type: 'array', itemz: {} } } },
    { Bad: { handler: () => {}, schema: 'array' as unknown as object } },
    { Bad: { schema: {} } as unknown as () => void },
    { Bad: { handler: () => {}, authorize: true as unknown as () => boolean } },
    'JoinRoom' as unknown as HubOptions['methods'],
    [() => {}] as unknown as HubOptions['methods']
  ]
  for (const methods of invalid) {
    const app = Fastify()
    t.after(() => app.close())
    void app.register(backplane)
    void app.register(hub, { path: '/testHub', methods })
    await assert.rejects(async () => { await app.ready() }, { code: 'FST_BACKPLANE_INVALID_OPTION' }, JSON.stringify(methods))
  }
})

test('methods given as a string fail ready', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  void app.register(backplane)
  void app.register(hub, { path: '/testHub', methods: 'JoinRoom' as unknown as HubOptions['methods'] })
  await assert.rejects(async () => { await app.ready() }, {
    code: 'FST_BACKPLANE_INVALID_OPTION',
    message: 'Invalid option "methods": expected an object or a Map of method names to functions, got "JoinRoom". Pass { MethodName: (context, ...args) => result }.'
  })
})
