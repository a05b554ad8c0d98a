// Socket.IO 4 with @socket.io/redis-adapter on ioredis, WebSocket transport only.
import { once } from 'node:events'
import { createServer } from 'node:http'
import { createAdapter } from '@socket.io/redis-adapter'
import { Redis } from 'ioredis'
import { Server } from 'socket.io'
import { runServer } from './harness.js'

runServer(async ({ redisUrl }) => {
  const publisher = new Redis(redisUrl)
  const subscriber = publisher.duplicate()
  await Promise.all([once(publisher, 'ready'), once(subscriber, 'ready')])

  const httpServer = createServer()
  const io = new Server(httpServer, {
    transports: ['websocket'],
    serveClient: false,
    adapter: createAdapter(publisher, subscriber)
  })
  io.on('connection', (socket) => {
    socket.on('join', async (group, acknowledge) => {
      await socket.join(group)
      acknowledge?.()
    })
  })
  httpServer.listen(0, '127.0.0.1')
  await once(httpServer, 'listening')

  return {
    port: httpServer.address().port,
    broadcast: (payload) => { io.emit('tick', payload) },
    broadcastToGroup: (group, payload) => { io.to(group).emit('tick', payload) },
    async close () {
      await new Promise((resolve) => io.close(() => resolve()))
      publisher.disconnect()
      subscriber.disconnect()
    }
  }
})
