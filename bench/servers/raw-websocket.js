// The reference servers without a hub: `ws` plus ioredis, nothing else. They differ only in
// how a payload reaches the sockets, which the entry passes in as `createDelivery`, and in
// what their clients send, which it may pass in as `clients`.
//
// By default a client receives from the moment it connects, and joins a group by sending the
// text `join:NAME` and waiting for `joined`. On Redis, a message is one origin byte (the
// instance number) followed by the payload, so an instance drops its own echo without decoding
// anything.
import { once } from 'node:events'
import { createServer } from 'node:http'
import { Redis } from 'ioredis'
import { WebSocketServer } from 'ws'

const ALL_CHANNEL = 'bench:all'
const GROUP_CHANNEL_PREFIX = 'bench:group:'
const JOIN_PREFIX = 'join:'
/**
 * Whether the sending instance publishes before it writes to its own sockets, as
 * fastify-backplane does, instead of after (BENCH_REFERENCE_PUBLISH_FIRST=1).
 */
const PUBLISH_FIRST = process.env.BENCH_REFERENCE_PUBLISH_FIRST === '1'

/**
 * The protocol of raw clients. `onMessage(text, session)` handles one WebSocket message, where
 * `session` is { send(text), receive(), join(group), fail(action, err) }: `receive()` adds the
 * socket to the recipients of broadcasts to all, `join()` resolves once the group's channel is
 * subscribed, and `fail()` logs what failed and closes the socket.
 */
export const RAW_CLIENTS = {
  receiveOnConnect: true,
  onMessage (text, session) {
    if (!text.startsWith(JOIN_PREFIX)) return
    session.join(text.slice(JOIN_PREFIX.length)).then(() => session.send('joined'), (err) => session.fail('join', err))
  }
}

/**
 * Starts a raw WebSocket server. `createDelivery()` returns `deliver(sockets, payload)`, which
 * writes a payload Buffer to every socket of an iterable.
 */
export async function startRawServer ({ redisUrl, instance, createDelivery, clients = RAW_CLIENTS, publishFirst = PUBLISH_FIRST }) {
  const deliver = createDelivery()
  const origin = Buffer.from([instance])
  const publisher = new Redis(redisUrl)
  const subscriber = publisher.duplicate()
  await Promise.all([once(publisher, 'ready'), once(subscriber, 'ready')])

  const sockets = new Set()
  const groups = new Map()
  const channelSockets = new Map([[ALL_CHANNEL, sockets]])
  await subscriber.subscribe(ALL_CHANNEL)
  subscriber.on('messageBuffer', (channel, message) => {
    if (message[0] === instance) return
    const targets = channelSockets.get(channel.toString('latin1'))
    if (targets !== undefined) deliver(targets, message.subarray(1))
  })

  async function join (socket, group) {
    let members = groups.get(group)
    if (members === undefined) {
      members = new Set()
      groups.set(group, members)
      channelSockets.set(GROUP_CHANNEL_PREFIX + group, members)
      await subscriber.subscribe(GROUP_CHANNEL_PREFIX + group)
    }
    members.add(socket)
    socket.once('close', () => members.delete(socket))
  }

  const httpServer = createServer()
  const webSocketServer = new WebSocketServer({ server: httpServer, perMessageDeflate: false })
  webSocketServer.on('connection', (socket) => {
    const session = {
      send: (text) => socket.send(text),
      receive: () => sockets.add(socket),
      join: (group) => join(socket, group),
      fail: (action, err) => {
        console.error(`raw server ${instance}: ${action} failed: ${err.message}`)
        socket.close(1011)
      }
    }
    if (clients.receiveOnConnect) session.receive()
    socket.on('close', () => sockets.delete(socket))
    socket.on('message', (data) => clients.onMessage(data.toString(), session))
  })
  httpServer.listen(0, '127.0.0.1')
  await once(httpServer, 'listening')

  function publish (channel, targets, payload) {
    const bytes = Buffer.from(payload, 'latin1')
    const message = Buffer.concat([origin, bytes])
    if (publishFirst) void publisher.publish(channel, message)
    deliver(targets, bytes)
    if (!publishFirst) void publisher.publish(channel, message)
  }

  return {
    port: httpServer.address().port,
    broadcast: (payload) => publish(ALL_CHANNEL, sockets, payload),
    broadcastToGroup: (group, payload) => publish(GROUP_CHANNEL_PREFIX + group, groups.get(group) ?? new Set(), payload),
    async close () {
      for (const socket of sockets) socket.terminate()
      webSocketServer.close()
      httpServer.close()
      publisher.disconnect()
      subscriber.disconnect()
    }
  }
}
