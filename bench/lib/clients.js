// One client per system under test, as the load generator opens them. Each `connect*` function
// resolves once the client is ready for broadcasts (and has joined `group`, if given) and calls
// `onPayload(source, offset)` for every payload it receives, where the 64-byte payload starts at
// `offset` in `source`, a Buffer or a string.
import { once } from 'node:events'
import { io } from 'socket.io-client'
import WebSocket from 'ws'

const RECORD_SEPARATOR = 0x1e
const SIGNALR_HANDSHAKE = JSON.stringify({ protocol: 'json', version: 1 }) + '\u001e'
const SIGNALR_PING = JSON.stringify({ type: 6 }) + '\u001e'
/** The start of the JSON record that `broadcast('tick', [payload])` sends, up to the payload. */
const TICK_PREFIX = Buffer.from('{"type":1,"target":"tick","arguments":["')
const INVOCATION_PREFIX = Buffer.from('{"type":1,')

/** Rejects if `promise` does not settle within `ms`, naming the operation that timed out. */
function within (promise, ms, operation) {
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${operation} timed out after ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Resolves with the first message, or rejects on error or close before it. */
function nextMessage (socket) {
  return new Promise((resolve, reject) => {
    const onMessage = (data) => { cleanup(); resolve(data) }
    const onError = (err) => { cleanup(); reject(err) }
    const onClose = (code) => { cleanup(); reject(new Error(`WebSocket closed with code ${code} before the expected message`)) }
    const cleanup = () => {
      socket.off('message', onMessage)
      socket.off('error', onError)
      socket.off('close', onClose)
    }
    socket.on('message', onMessage)
    socket.on('error', onError)
    socket.on('close', onClose)
  })
}

async function openWebSocket (url, timeoutMs) {
  const socket = new WebSocket(url, { perMessageDeflate: false })
  await within(once(socket, 'open'), timeoutMs, `opening ${url}`)
  return socket
}

/**
 * Connects a SignalR client that speaks the JSON hub protocol over raw `ws` and reports the
 * Invocation records of the target `tick`. The load generator calls `ping()` every 10 s, as
 * SignalR clients send Pings, so the hub's client timeout (30 s by default) never closes it.
 */
export async function connectSignalR ({ port, group, onPayload, onClose, timeoutMs }) {
  const socket = await openWebSocket(`ws://127.0.0.1:${port}/hub`, timeoutMs)
  socket.send(SIGNALR_HANDSHAKE)
  const handshake = String(await within(nextMessage(socket), timeoutMs, 'SignalR handshake'))
  if (handshake !== '{}\u001e') throw new Error(`SignalR handshake failed: the server sent ${JSON.stringify(handshake)}`)

  if (group !== undefined) {
    socket.send(JSON.stringify({ type: 1, invocationId: 'join', target: 'Join', arguments: [group] }) + '\u001e')
    const completion = JSON.parse(String(await within(nextMessage(socket), timeoutMs, 'SignalR Join')).slice(0, -1))
    if (completion.type !== 3 || completion.error !== undefined) throw new Error(`SignalR Join failed: ${JSON.stringify(completion)}`)
  }

  socket.on('message', (data) => readSignalRRecords(data, onPayload))
  socket.on('close', onClose)
  socket.on('error', () => {})
  return {
    ping: () => { if (socket.readyState === WebSocket.OPEN) socket.send(SIGNALR_PING) },
    close: () => closeWebSocket(socket)
  }
}

/** Finds each `tick` Invocation in a message, which may contain several records. */
function readSignalRRecords (data, onPayload) {
  let start = 0
  while (start < data.length) {
    const end = data.indexOf(RECORD_SEPARATOR, start)
    if (end === -1) return
    if (startsWith(data, start, end, TICK_PREFIX)) {
      onPayload(data, start + TICK_PREFIX.length)
    } else if (startsWith(data, start, end, INVOCATION_PREFIX)) {
      // An Invocation laid out differently, for example with other key order: parse it fully.
      const message = JSON.parse(data.toString('utf8', start, end))
      if (message.target === 'tick') onPayload(String(message.arguments[0]), 0)
    }
    start = end + 1
  }
}

function startsWith (data, start, end, prefix) {
  return end - start >= prefix.length && data.compare(prefix, 0, prefix.length, start, start + prefix.length) === 0
}

/** Connects a Socket.IO client, WebSocket transport only, on its own connection (`forceNew`). */
export async function connectSocketIo ({ port, group, onPayload, onClose, timeoutMs }) {
  const socket = io(`http://127.0.0.1:${port}`, {
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    timeout: timeoutMs
  })
  await within(new Promise((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('connect_error', reject)
  }), timeoutMs, 'Socket.IO connect')
  if (group !== undefined) await within(socket.emitWithAck('join', group), timeoutMs, 'Socket.IO join')

  socket.on('tick', (payload) => onPayload(payload, 0))
  socket.on('disconnect', (reason) => { if (reason !== 'io client disconnect') onClose() })
  return {
    ping: () => {},
    close: async () => {
      socket.disconnect()
    }
  }
}

/** Connects a client of the floor or coalescing server, where each WebSocket message is one payload. */
export async function connectRaw ({ port, group, onPayload, onClose, timeoutMs }) {
  const socket = await openWebSocket(`ws://127.0.0.1:${port}/`, timeoutMs)
  if (group !== undefined) {
    socket.send(`join:${group}`)
    const reply = String(await within(nextMessage(socket), timeoutMs, 'raw join'))
    if (reply !== 'joined') throw new Error(`raw join failed: the server sent ${JSON.stringify(reply)}`)
  }
  socket.on('message', (data) => onPayload(data, 0))
  socket.on('close', onClose)
  socket.on('error', () => {})
  return {
    ping: () => {},
    close: () => closeWebSocket(socket)
  }
}

async function closeWebSocket (socket) {
  if (socket.readyState === WebSocket.CLOSED) return
  socket.removeAllListeners('close')
  const closed = once(socket, 'close')
  socket.close()
  await within(closed, 2000, 'WebSocket close').catch(() => socket.terminate())
}

export const clientConnectors = {
  'fastify-backplane': connectSignalR,
  'socket.io': connectSocketIo,
  floor: connectRaw,
  coalescing: connectRaw,
  'signalr-minimal': connectSignalR
}
