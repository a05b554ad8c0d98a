import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr'
import type { HubConnection } from '@microsoft/signalr'
import type { FastifyInstance } from 'fastify'
import type { TestContext } from 'node:test'
import { buildApp } from '../src/app.js'
import type { AppOptions } from '../src/app.js'
import type { Note } from '../src/notes.js'
import { startRedisServer } from '../../fastify-backplane/test/helpers/redis-server.js'
import type { RedisServer } from '../../fastify-backplane/test/helpers/redis-server.js'

const cleanupStacks = new WeakMap<TestContext, Array<() => unknown>>()

/**
 * Runs `cleanup` when the test ends. Cleanups run last registered first, so a server started
 * before its clients outlives them, unlike `t.after` hooks, which run in registration order.
 * Every cleanup runs even when an earlier one throws, and the first error is raised afterwards.
 */
export function cleanUpAtEnd (t: TestContext, cleanup: () => unknown): void {
  let stack = cleanupStacks.get(t)
  if (stack === undefined) {
    const cleanups: Array<() => unknown> = []
    stack = cleanups
    cleanupStacks.set(t, cleanups)
    t.after(async () => {
      const errors: unknown[] = []
      for (const run of cleanups.reverse()) {
        try {
          await run()
        } catch (err) {
          errors.push(err)
        }
      }
      if (errors.length > 0) throw errors[0]
    })
  }
  stack.push(cleanup)
}

/** Spawns a `redis-server` on a free loopback port and stops it when the test ends. */
export async function startRedis (t: TestContext, extraArgs: string[] = []): Promise<RedisServer> {
  const redis = await startRedisServer(extraArgs)
  cleanUpAtEnd(t, () => redis.stop())
  return redis
}

/** Builds the app, listens on a free loopback port, and closes the app when the test ends. */
export async function startApp (t: TestContext, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = await buildApp({ logger: false, ...options })
  cleanUpAtEnd(t, () => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  return app
}

/** Returns the base URL of a listening app, on loopback. */
export function baseUrl (app: FastifyInstance): string {
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('the app is not listening on TCP')
  return `http://127.0.0.1:${address.port}`
}

/**
 * Connects the official SignalR client to the app's `/noteHub` the way the page does,
 * WebSockets only with negotiation skipped, and stops it when the test ends.
 */
export async function connectClient (t: TestContext, app: FastifyInstance): Promise<HubConnection> {
  const connection = new HubConnectionBuilder()
    .withUrl(`${baseUrl(app)}/noteHub`, { skipNegotiation: true, transport: HttpTransportType.WebSockets })
    .configureLogging(LogLevel.None)
    .build()
  cleanUpAtEnd(t, () => connection.stop())
  await connection.start()
  return connection
}

/** Collects every NoteAdded that a connection receives, and lets a test wait for a count. */
export class NoteInbox {
  readonly notes: Note[] = []
  #waiters: Array<{ count: number, resolve: () => void }> = []

  constructor (connection: HubConnection) {
    connection.on('NoteAdded', (note: Note) => {
      this.notes.push(note)
      this.#waiters = this.#waiters.filter((waiter) => {
        if (this.notes.length < waiter.count) return true
        waiter.resolve()
        return false
      })
    })
  }

  /** Resolves with the notes once `count` have arrived; rejects after `timeout` ms. */
  async waitFor (count: number, timeout = 10_000): Promise<Note[]> {
    if (this.notes.length >= count) return this.notes
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      new Promise<void>((resolve) => this.#waiters.push({ count, resolve })),
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`expected ${count} NoteAdded messages, received ${this.notes.length} within ${timeout} ms`)), timeout)
      })
    ]).finally(() => clearTimeout(timer))
    return this.notes
  }
}
