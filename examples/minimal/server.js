// A chat hub that works the same on one instance or many. Clients on any instance receive what
// a client or a route on any other instance sends, through Redis pub/sub.
import Fastify from 'fastify'
import { backplane, hub, HubException } from 'fastify-backplane'

const app = Fastify({ logger: true })

// Without REDIS_URL, or with an empty one, messages stay inside this process.
await app.register(backplane, { redis: process.env.REDIS_URL, channelPrefix: 'minimal-chat:' })
await app.register(hub, {
  path: '/chatHub',
  methods: {
    async JoinRoom (context, room) {
      await context.groups.add(room)
    },
    async SendMessage (context, room, text) {
      if (typeof text !== 'string' || text === '') throw new HubException('Message text is required.')
      await context.clients.group(room).send('ReceiveMessage', context.connectionId, text)
    }
  }
})

// A route, a hook or a worker can reach the clients of every instance.
app.post('/announce', async (request) => {
  const text = String(request.body?.text ?? '')
  await app.broadcast('ReceiveMessage', ['server', text], { group: 'lobby' })
  return { ok: true }
})

// app.close() sends every client a Close message that allows reconnecting, so clients built
// with withAutomaticReconnect() move to another instance.
process.once('SIGTERM', () => {
  app.close().then(() => process.exit(0), (err) => {
    app.log.error({ err }, 'closing the server failed')
    process.exit(1)
  })
})

await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
