// The floor: the payload is encoded once and handed to `ws`'s send() for every socket, which
// makes one write (a writev of frame header and payload) per message per socket.
import { runServer } from './harness.js'
import { startRawServer } from './raw-websocket.js'

const TEXT = { binary: false }

runServer(({ redisUrl, instance }) => startRawServer({
  redisUrl,
  instance,
  createDelivery: () => (sockets, payload) => {
    for (const socket of sockets) socket.send(payload, TEXT)
  }
}))
