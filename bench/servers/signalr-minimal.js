// A minimal SignalR server, which shows what of fastify-backplane's figures the hub itself
// costs. It is not one of the three references that the targets compare with. It has the
// coalescing reference's delivery, but each payload travels as the JSON Invocation record that
// fastify-backplane sends for `broadcast('tick', [payload])`, and clients do the SignalR
// handshake and join groups by invoking `Join`. Like fastify-backplane, it publishes each
// broadcast before it writes to its own sockets. It has no hub: no MessagePack, no envelope, no
// slow-client cap, no keep-alive and no connection state.
import { createCoalescingDelivery } from './coalescing-delivery.js'
import { runServer } from './harness.js'
import { startRawServer } from './raw-websocket.js'

const RECORD_SEPARATOR = '\u001e'
const RECORD_START = '{"type":1,"target":"tick","arguments":["'
const RECORD_END = '"]}' + RECORD_SEPARATOR

/** The messages of the bench's SignalR clients: the handshake, Pings, and the Join invocation. */
const SIGNALR_CLIENTS = {
  receiveOnConnect: false,
  onMessage (text, session) {
    for (const record of text.split(RECORD_SEPARATOR)) {
      if (record === '') continue
      let message
      try {
        message = JSON.parse(record)
      } catch (err) {
        session.fail('parsing a record', err)
        return
      }
      if (message.protocol === 'json') {
        session.send('{}' + RECORD_SEPARATOR)
        session.receive()
      } else if (message.type === 1 && message.target === 'Join') {
        session.join(String(message.arguments[0])).then(
          () => session.send(JSON.stringify({ type: 3, invocationId: message.invocationId }) + RECORD_SEPARATOR),
          (err) => session.fail('Join', err)
        )
      }
    }
  }
}

// The payload is 64 ASCII characters without quotes or backslashes, so it needs no escaping.
const encodeRecord = (payload) => Buffer.from(RECORD_START + payload.toString('latin1') + RECORD_END, 'latin1')

runServer(({ redisUrl, instance }) => startRawServer({
  redisUrl,
  instance,
  createDelivery: () => createCoalescingDelivery(encodeRecord),
  clients: SIGNALR_CLIENTS,
  publishFirst: true
}))
