import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, connect } from 'node:net'
import type { Server, Socket } from 'node:net'
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import { freePort } from '../src/cluster/local-cluster.js'
import { startRoundRobinFront } from '../src/cluster/round-robin-front.js'
import type { Backend } from '../src/cluster/round-robin-front.js'
import { cleanUpAtEnd } from './helpers.js'

/** Starts a TCP server that greets each connection with its name, then echoes what it receives. */
async function startNamedServer (t: TestContext, name: string): Promise<Backend> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    socket.write(`${name}\n`)
    socket.pipe(socket)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanUpAtEnd(t, () => {
    server.close()
    for (const socket of sockets) socket.destroy()
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no TCP address')
  return { host: '127.0.0.1', port: address.port, name }
}

/**
 * Opens a connection through the front, sends `message`, and returns everything received
 * until the connection closes, with the code of the error that closed it, if any.
 */
async function exchange (port: number, message: string): Promise<{ text: string, errorCode?: string }> {
  const socket = connect({ host: '127.0.0.1', port })
  let text = ''
  let errorCode: string | undefined
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => {
    text += chunk
    if (text.includes(message)) socket.end()
  })
  socket.on('error', (err: NodeJS.ErrnoException) => { errorCode = err.code })
  socket.write(message)
  // Not events.once, which rejects when 'error' comes before 'close'.
  await new Promise((resolve) => socket.once('close', resolve))
  return errorCode === undefined ? { text } : { text, errorCode }
}

test('front alternates between backends', async (t) => {
  const backends = [await startNamedServer(t, 'one'), await startNamedServer(t, 'two')]
  const front = await startRoundRobinFront({ backends: () => backends })
  cleanUpAtEnd(t, () => front.close())

  const replies = []
  for (let i = 0; i < 4; i++) replies.push((await exchange(front.port, `ping ${i}`)).text)
  assert.deepEqual(replies, ['one\nping 0', 'two\nping 1', 'one\nping 2', 'two\nping 3'])
  assert.equal(front.url, `http://127.0.0.1:${front.port}`)
})

test('front skips a backend that rejects', async (t) => {
  const closedPort = await freePort()
  const live = await startNamedServer(t, 'live')
  const failures: string[] = []
  const front = await startRoundRobinFront({
    backends: () => [{ host: '127.0.0.1', port: closedPort, name: 'down' }, live],
    onBackendFailed: (backend, err) => failures.push(`${backend.name}: ${(err as NodeJS.ErrnoException).code}`)
  })
  cleanUpAtEnd(t, () => front.close())

  assert.deepEqual(await exchange(front.port, 'first'), { text: 'live\nfirst' }, 'the connection meant for the closed port')
  assert.deepEqual(await exchange(front.port, 'second'), { text: 'live\nsecond' })
  assert.deepEqual(failures, ['down: ECONNREFUSED'])
})

test('front closes the client when every backend rejects', async (t) => {
  const ports = [await freePort(), await freePort()]
  const front = await startRoundRobinFront({ backends: () => ports.map((port) => ({ host: '127.0.0.1', port })) })
  cleanUpAtEnd(t, () => front.close())

  const reply = await exchange(front.port, 'anyone?')
  assert.equal(reply.text, '')
  // The front destroys the socket with the request unread, so the kernel may send a reset.
  assert.ok(reply.errorCode === undefined || reply.errorCode === 'ECONNRESET', `closed with ${reply.errorCode}`)
})

test('front close ends open connections', async (t) => {
  const backend = await startNamedServer(t, 'one')
  const front = await startRoundRobinFront({ backends: () => [backend] })
  const socket = connect({ host: '127.0.0.1', port: front.port })
  socket.on('error', () => {})
  await once(socket, 'data')

  const closed = once(socket, 'close')
  await front.close()
  await closed
  assert.deepEqual(await exchange(front.port, 'late'), { text: '', errorCode: 'ECONNREFUSED' })
})
