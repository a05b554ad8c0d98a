import { once } from 'node:events'
import { createConnection, createServer } from 'node:net'
import type { Socket } from 'node:net'

/** A TCP address that the front forwards connections to. */
export interface Backend {
  host: string
  port: number
  /** A name for messages, such as `web.1`. */
  name?: string
}

export interface RoundRobinFrontOptions {
  /**
   * Returns the backends. The front calls it for every new connection, so the list may change
   * while the front runs.
   */
  backends: () => readonly Backend[]
  /** @default '127.0.0.1' */
  host?: string
  /** @default 0, a free port */
  port?: number
  /**
   * How long a backend may take to accept a connection before the front tries the next one,
   * in milliseconds.
   * @default 5000
   */
  connectTimeoutMs?: number
  /** Called when a backend rejects a connection or does not accept it in time. */
  onBackendFailed?: (backend: Backend, err: Error) => void
}

export interface RoundRobinFront {
  readonly host: string
  readonly port: number
  /** `http://host:port`. */
  readonly url: string
  /** Stops accepting connections and closes every open one. */
  close (): Promise<void>
}

/**
 * Starts a TCP front that forwards each new connection to the next backend in turn, as
 * Heroku's router spreads connections over dynos. A backend that rejects the connection or
 * does not accept it in time is skipped, and the connection goes to the next one. When every
 * backend fails, the front closes the client's connection.
 *
 * It forwards bytes only: it adds no X-Forwarded-* headers and does not parse HTTP, so one
 * keep-alive connection and everything sent on it stays on one backend.
 */
export async function startRoundRobinFront (options: RoundRobinFrontOptions): Promise<RoundRobinFront> {
  const host = options.host ?? '127.0.0.1'
  const connectTimeoutMs = options.connectTimeoutMs ?? 5000
  const sockets = new Set<Socket>()
  let next = 0

  const track = (socket: Socket): void => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  }

  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    track(client)
    // A client that goes away while the front is still connecting must not crash the process.
    client.on('error', () => client.destroy())
    const backends = [...options.backends()]
    if (backends.length === 0) {
      client.destroy()
      return
    }
    const first = next++ % backends.length
    const order = backends.map((_, offset) => backends[(first + offset) % backends.length]!)
    forward(client, order)
  })

  /** Connects to the first backend of `candidates` that accepts, then pipes both ways. */
  function forward (client: Socket, candidates: Backend[]): void {
    const backend = candidates[0]
    if (backend === undefined || client.destroyed) {
      client.destroy()
      return
    }

    const upstream = createConnection({ host: backend.host, port: backend.port, allowHalfOpen: true })
    track(upstream)
    upstream.setTimeout(connectTimeoutMs, () => {
      upstream.destroy(new Error(`connecting to ${backend.host}:${backend.port} timed out after ${connectTimeoutMs} ms`))
    })

    const failBeforeConnect = (err: Error): void => {
      options.onBackendFailed?.(backend, err)
      forward(client, candidates.slice(1))
    }
    upstream.once('error', failBeforeConnect)

    upstream.once('connect', () => {
      upstream.setTimeout(0)
      upstream.off('error', failBeforeConnect)
      if (client.destroyed) {
        upstream.destroy()
        return
      }
      upstream.on('error', () => client.destroy())
      client.on('error', () => upstream.destroy())
      upstream.once('close', () => client.destroy())
      client.once('close', () => upstream.destroy())
      client.pipe(upstream)
      upstream.pipe(client)
      client.resume()
    })
  }

  server.listen(options.port ?? 0, host)
  await once(server, 'listening')
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('the round-robin front is not listening on TCP')

  return {
    host,
    port: address.port,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`,
    close: async () => {
      const closed = once(server, 'close')
      server.close()
      for (const socket of sockets) socket.destroy()
      await closed
    }
  }
}
