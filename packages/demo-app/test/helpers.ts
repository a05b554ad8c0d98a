import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr'
import type { HubConnection } from '@microsoft/signalr'
import type { FastifyInstance } from 'fastify'
import type { TestContext } from 'node:test'
import { buildApp } from '../src/app.js'
import type { AppOptions } from '../src/app.js'
import type { BoardChange, Note } from '../src/notes.js'
import type { BoardPresence } from '../src/presence.js'
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

/** The messages that carry board changes, in the order the hub defines them. */
export const CHANGE_METHODS = ['NoteAdded', 'NoteEdited', 'NoteMoved', 'NoteDeleted'] as const
export type ChangeMethod = typeof CHANGE_METHODS[number]

/** One change message as a connection received it. */
export interface ReceivedChange {
  method: ChangeMethod
  change: BoardChange & Record<string, unknown>
}

/**
 * Collects the change messages and PresenceChanged messages that a connection receives, and
 * lets a test wait for them.
 */
export class BoardInbox {
  readonly changes: ReceivedChange[] = []
  readonly presence: BoardPresence[] = []
  #waiters: Array<() => void> = []

  constructor (connection: HubConnection) {
    for (const method of CHANGE_METHODS) {
      connection.on(method, (change: ReceivedChange['change']) => {
        this.changes.push({ method, change })
        this.#notify()
      })
    }
    connection.on('PresenceChanged', (presence: BoardPresence) => {
      this.presence.push(presence)
      this.#notify()
    })
  }

  /** The notes of the NoteAdded messages received so far. */
  get addedNotes (): Note[] {
    return this.changes.filter(({ method }) => method === 'NoteAdded').map(({ change }) => change.note as Note)
  }

  /** Resolves with the changes once `count` have arrived; rejects after `timeout` ms. */
  async waitForChanges (count: number, timeout = 10_000): Promise<ReceivedChange[]> {
    await this.#waitUntil(() => this.changes.length >= count, timeout, () => `expected ${count} change messages, received ${this.changes.length}: ${JSON.stringify(this.changes)}`)
    return this.changes
  }

  /** Resolves with the first PresenceChanged that satisfies `match`, waiting up to `timeout` ms. */
  async waitForPresence (match: (presence: BoardPresence) => boolean, timeout = 10_000): Promise<BoardPresence> {
    await this.#waitUntil(() => this.presence.some(match), timeout, () => `no matching PresenceChanged within ${timeout} ms; received ${JSON.stringify(this.presence)}`)
    return this.presence.find(match)!
  }

  #notify (): void {
    for (const waiter of this.#waiters) waiter()
  }

  async #waitUntil (done: () => boolean, timeout: number, describe: () => string): Promise<void> {
    if (done()) return
    let timer: NodeJS.Timeout | undefined
    let check: (() => void) | undefined
    try {
      await new Promise<void>((resolve, reject) => {
        check = () => { if (done()) resolve() }
        this.#waiters.push(check)
        timer = setTimeout(() => reject(new Error(describe())), timeout)
      })
    } finally {
      clearTimeout(timer)
      this.#waiters = this.#waiters.filter((waiter) => waiter !== check)
    }
  }
}
