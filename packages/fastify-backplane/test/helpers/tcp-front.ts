import { once } from 'node:events'
import { createConnection, createServer } from 'node:net'
import type { Server, Socket } from 'node:net'

/**
 * A round-robin TCP front on loopback, standing in for Heroku's router: each new connection
 * goes to the next backend that accepts it, so a client that reconnects to the same URL can
 * land on another instance.
 */
export interface TcpFront {
  readonly port: number
  readonly url: string
  close (): Promise<void>
}

export async function startTcpFront (backendPorts: () => number[]): Promise<TcpFront> {
  let next = 0
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    sockets.add(client)
    client.once('close', () => sockets.delete(client))
    const ports = backendPorts()
    connectToBackend(client, ports, next++ % Math.max(1, ports.length), ports.length)
  })

  function connectToBackend (client: Socket, ports: number[], index: number, attemptsLeft: number): void {
    if (attemptsLeft === 0) {
      client.destroy()
      return
    }
    const backend = createConnection({ host: '127.0.0.1', port: ports[index]! })
    backend.once('connect', () => {
      sockets.add(backend)
      backend.once('close', () => sockets.delete(backend))
      client.pipe(backend).pipe(client)
      client.once('close', () => backend.destroy())
      backend.once('close', () => client.destroy())
    })
    backend.once('error', () => {
      if (backend.connecting) connectToBackend(client, ports, (index + 1) % ports.length, attemptsLeft - 1)
      else client.destroy()
    })
  }

  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('the front is not listening on TCP')
  return {
    port: address.port,
    url: `http://127.0.0.1:${address.port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      server.close()
      await once(server, 'close')
    }
  }
}
