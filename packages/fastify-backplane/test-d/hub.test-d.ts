import Fastify from 'fastify'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { expectAssignable, expectError, expectType } from 'tsd'
import { backplane, hub, HubException, jsonHubProtocol, messagePackHubProtocol } from 'fastify-backplane'
import type { CallerClients, HubConnectionContext, HubContext, HubMethod, HubOptions, HubProtocol } from 'fastify-backplane'

const app = Fastify()
await app.register(backplane)

// Accepted options, with the context of every method typed from the options.
await app.register(hub, { path: '/chatHub' })
await app.register(hub, {
  path: '/chatHub',
  name: 'chat',
  methods: {
    async JoinRoom (context, room: string) {
      expectType<HubConnectionContext>(context)
      await context.groups.add(room)
    },
    SendMessage (context, room: string, text: string) {
      if (text === '') throw new HubException('Message text is required.')
      return context.clients.group(room).send('ReceiveMessage', context.connectionId, text)
    },
    async * Countdown (_context, from: number) {
      for (let i = from; i >= 0; i--) yield i
    }
  },
  authenticate: async (request, token) => {
    expectType<FastifyRequest>(request)
    expectType<string | undefined>(token)
    return token === undefined ? false : 'user-1'
  },
  onConnected: (context) => context.log.info('connected'),
  onDisconnected: (context, error) => {
    expectType<Error | undefined>(error)
    context.log.info({ err: error }, 'disconnected')
  },
  protocols: [jsonHubProtocol, messagePackHubProtocol],
  keepAliveInterval: 15_000,
  clientTimeoutInterval: 30_000,
  handshakeTimeout: 15_000,
  maximumReceiveMessageSize: 32 * 1024,
  maximumParallelInvocationsPerClient: 1,
  maximumQueuedInvocationsPerClient: 100,
  streamBufferCapacity: 10,
  clientResultTimeout: 30_000,
  negotiateSecret: 'a-secret-of-at-least-16-characters',
  connectionTokenLifetime: 60_000,
  enableDetailedErrors: false,
  closeTimeout: 2000
})
await app.register(hub, { path: '/mapHub', methods: new Map<string, HubMethod>([['Echo', (_context, text: string) => text]]) })
await app.register(hub, { path: '/anonymousHub', authenticate: () => undefined })
await app.register(hub, {
  path: '/guardedHub',
  methods: {
    Rename: {
      handler: (_context, name: string) => name,
      schema: { type: 'array', items: [{ type: 'string' }], minItems: 1 },
      authorize: (context) => context.userId !== undefined
    }
  },
  allowedOrigins: ['https://app.example.com'],
  authorize: async (context, method, args) => {
    expectType<HubConnectionContext>(context)
    expectType<string>(method)
    expectType<unknown[]>(args)
    return true
  },
  authorizeGroup: (_context, group) => group !== 'admins',
  maximumConnections: 10_000,
  maximumConnectionsPerIp: 20,
  maximumInvocationsPerSecond: 100,
  maximumGroupsPerClient: 100
})
await app.register(hub, { path: '/checkedOriginHub', allowedOrigins: (origin, request) => origin === `https://${request.host}` })
expectAssignable<HubProtocol>(jsonHubProtocol)

// Rejected options.
expectError(await app.register(hub, {}))
expectError(await app.register(hub, { name: 'chat' }))
expectError(await app.register(hub, { path: 1 }))
expectError(await app.register(hub, { path: '/chatHub', methods: { SendMessage: 'not a function' } }))
expectError(await app.register(hub, { path: '/chatHub', authenticate: () => 42 }))
expectError(await app.register(hub, { path: '/chatHub', protocols: ['json'] }))
expectError(await app.register(hub, { path: '/chatHub', keepAliveInterval: '15s' }))
expectError(await app.register(hub, { path: '/chatHub', enableDetailedErrors: 'yes' }))
expectError(await app.register(hub, { path: '/chatHub', keepAliveIntervall: 15_000 }))
expectError(await app.register(hub, { path: '/chatHub', allowedOrigins: 'https://app.example.com' }))
expectError(await app.register(hub, { path: '/chatHub', authorize: () => 'yes' }))
expectError(await app.register(hub, { path: '/chatHub', methods: { Rename: { schema: { type: 'array' } } } }))
expectError<HubOptions>({ methods: {} })

// The connection context.
declare const context: HubConnectionContext
expectType<string>(context.connectionId)
expectType<string | undefined>(context.userId)
expectType<string>(context.hub)
// The upgrade request reaches onConnected only; the context does not keep it.
expectError(context.request)
await app.register(hub, {
  path: '/connectedHub',
  onConnected: (connected, request) => {
    expectType<HubConnectionContext>(connected)
    expectType<FastifyRequest>(request)
  }
})
expectType<FastifyBaseLogger>(context.log)
expectType<Map<unknown, unknown>>(context.items)
expectType<Promise<void>>(context.groups.add('lobby'))
expectType<Promise<void>>(context.groups.remove('lobby'))
expectType<boolean>(context.groups.has('lobby'))
expectType<CallerClients>(context.clients)
expectType<HubContext>(context.hubContext)
expectType<Promise<void>>(context.send('ReceiveMessage', 1, 'two', { three: 3 }))
expectType<Promise<unknown>>(context.invoke('GetMessage'))
expectType<Promise<void>>(context.broadcast('ReceiveMessage', ['hello'], { group: 'lobby' }))
expectError(context.broadcast('ReceiveMessage', ['hello'], { hub: 'other' }))
expectError(context.connectionId = 'other')

// Clients selectors, untyped by default: any method name with any arguments.
expectType<Promise<void>>(context.clients.all.send('ReceiveMessage'))
expectType<Promise<void>>(context.clients.caller.send('ReceiveMessage', 'x'))
expectType<Promise<unknown>>(context.clients.caller.invoke('GetMessage'))
expectType<Promise<void>>(context.clients.others.send('ReceiveMessage', 'x'))
expectType<Promise<void>>(context.clients.othersInGroup('lobby').send('ReceiveMessage', 'x'))
expectType<Promise<void>>(context.clients.allExcept(['connection-1']).send('ReceiveMessage'))
expectType<Promise<void>>(context.clients.clients(['connection-1']).send('ReceiveMessage'))
expectType<Promise<void>>(context.clients.groups(['a', 'b']).send('ReceiveMessage'))
expectType<Promise<void>>(context.clients.groupExcept('a', ['connection-1']).send('ReceiveMessage'))
expectType<Promise<void>>(context.clients.user('user-1').send('ReceiveMessage'))
expectType<Promise<void>>(context.clients.users(['user-1']).send('ReceiveMessage'))
expectType<Promise<unknown>>(context.clients.client('connection-1').invoke('GetMessage'))
expectError(context.clients.all.send(42))
expectError(context.clients.group(['a', 'b']))
expectError(context.clients.allExcept('connection-1'))
expectError(context.clients.all.invoke('GetMessage'))

// HubException is an Error whose message reaches the client.
expectAssignable<Error>(new HubException('Message text is required.'))
