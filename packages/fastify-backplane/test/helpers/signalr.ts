import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr'
import type { HubConnection } from '@microsoft/signalr'
import type { FastifyInstance } from 'fastify'

/** Returns the loopback base URL of a listening Fastify instance. */
export function baseUrl (app: FastifyInstance): string {
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('the app is not listening on TCP')
  return `http://127.0.0.1:${address.port}`
}

/**
 * Connects the official SignalR client the way a SignalR app on Heroku does: WebSockets only,
 * negotiation skipped.
 */
export async function connectClient (app: FastifyInstance, path: string, configure?: (builder: HubConnectionBuilder) => void): Promise<HubConnection> {
  const builder = new HubConnectionBuilder()
    .withUrl(baseUrl(app) + path, { skipNegotiation: true, transport: HttpTransportType.WebSockets })
    .configureLogging(LogLevel.None)
  configure?.(builder)
  const connection = builder.build()
  await connection.start()
  return connection
}

/** Collects the arguments of every call of a client method, and lets a test wait for a count. */
export class Received<T extends unknown[] = unknown[]> {
  readonly calls: T[] = []
  #waiters: Array<{ count: number, resolve: () => void }> = []

  constructor (connection: HubConnection, method: string) {
    connection.on(method, (...args: unknown[]) => {
      this.calls.push(args as T)
      this.#waiters = this.#waiters.filter((waiter) => {
        if (this.calls.length < waiter.count) return true
        waiter.resolve()
        return false
      })
    })
  }

  /** Resolves once `count` calls arrived; rejects after `timeout` ms. */
  async waitFor (count: number, timeout = 10_000): Promise<T[]> {
    if (this.calls.length >= count) return this.calls
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      new Promise<void>((resolve) => this.#waiters.push({ count, resolve })),
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`expected ${count} calls, received ${this.calls.length} within ${timeout} ms`)), timeout)
      })
    ]).finally(() => clearTimeout(timer))
    return this.calls
  }
}
