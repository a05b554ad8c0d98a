import Fastify from 'fastify'
import { expectAssignable, expectError, expectType } from 'tsd'
import { backplane, hub } from 'fastify-backplane'
import type { CallerClients, ClientMethods, ClientProxy, HubClients, HubConnectionContext, HubContext, SingleClientProxy } from 'fastify-backplane'

/** The client methods of a chat app, declared as an interface, as SignalR's `Hub<T>` has it. */
interface ChatClient {
  ReceiveMessage: [from: string, text: string]
  UserTyping: [userId: string]
  Cleared: []
}

/** The same kind of map declared as a type alias. */
type NotesClient = { NoteAdded: [note: { id: string, text: string }] }

const app = Fastify()
await app.register(backplane)

// hubContext<T>() checks method names and argument tuples.
const chat = app.backplane.hubContext<ChatClient>('chat')
expectType<HubContext<ChatClient>>(chat)
expectType<HubClients<ChatClient>>(chat.clients)
expectType<ClientProxy<ChatClient>>(chat.clients.all)
expectType<SingleClientProxy<ChatClient>>(chat.clients.client('connection-1'))
expectType<Promise<void>>(chat.clients.all.send('ReceiveMessage', 'server', 'hello'))
expectType<Promise<void>>(chat.clients.group('lobby').send('UserTyping', 'user-1'))
expectType<Promise<void>>(chat.clients.users(['user-1']).send('Cleared'))
expectType<Promise<unknown>>(chat.clients.client('connection-1').invoke('UserTyping', 'user-1'))
expectError(chat.clients.all.send('ReceiveMessage', 'server'))
expectError(chat.clients.all.send('ReceiveMessage', 'server', 42))
expectError(chat.clients.all.send('ReceiveMessage', 'server', 'hello', 'extra'))
expectError(chat.clients.all.send('Unknown'))
expectError(chat.clients.all.send('receivemessage', 'server', 'hello'))
expectError(chat.clients.group('lobby').send('Cleared', 'extra'))
expectError(chat.clients.client('connection-1').invoke('Unknown'))

const notes = app.backplane.hubContext<NotesClient>()
expectType<Promise<void>>(notes.clients.all.send('NoteAdded', { id: '1', text: 'hello' }))
expectError(notes.clients.all.send('NoteAdded', { id: 1, text: 'hello' }))

// A map whose values are not argument tuples is rejected.
expectError(app.backplane.hubContext<{ ReceiveMessage: string }>())

// The default type argument keeps the untyped API.
expectType<HubContext<ClientMethods>>(app.backplane.hubContext())
expectType<HubContext>(app.backplane.hubContext())
expectType<Promise<void>>(app.backplane.hubContext().clients.all.send('AnyMethod', 1, 'two', [3]))

// A hub method may annotate its context with the client map, and the hub plugin accepts it.
await app.register(hub, {
  path: '/chatHub',
  methods: {
    async SendMessage (context: HubConnectionContext<ChatClient>, text: string) {
      expectType<CallerClients<ChatClient>>(context.clients)
      expectType<HubContext<ChatClient>>(context.hubContext)
      await context.clients.others.send('ReceiveMessage', context.connectionId, text)
      await context.clients.caller.send('Cleared')
      await context.send('UserTyping', context.connectionId)
      expectError(context.clients.others.send('ReceiveMessage', text))
      expectError(context.clients.othersInGroup('lobby').send('Unknown'))
      expectError(context.send('Cleared', 'extra'))
      expectError(context.invoke('UserTyping'))
    }
  },
  onConnected: async (context: HubConnectionContext<ChatClient>) => {
    await context.clients.all.send('UserTyping', context.connectionId)
  }
})

// Untyped contexts and proxies fit where typed ones are expected, which is what lets the hub
// plugin pass its untyped context to a method that declares a typed one.
declare const untypedContext: HubConnectionContext
expectAssignable<HubConnectionContext<ChatClient>>(untypedContext)
expectAssignable<ClientProxy<ChatClient>>(app.backplane.hubContext().clients.all)
