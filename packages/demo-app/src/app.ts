import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import { hostname } from 'node:os'
import { dirname } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import fastifyRedis from '@fastify/redis'
import fastifyStatic from '@fastify/static'
import Fastify from 'fastify'
import type { FastifyBaseLogger, FastifyInstance, FastifyServerOptions } from 'fastify'
import { backplane, connectRedis, hub, parseRedisUrl } from 'fastify-backplane'
import { MemoryNoteStore } from './memory-note-store.js'
import { createNoteHub, groupForBoard } from './note-hub.js'
import type { NoteStore } from './notes.js'
import { PresenceNotifier } from './presence.js'
import { RedisNoteStore } from './redis-note-store.js'

export interface AppOptions {
  /**
   * A `redis://` or `rediss://` URL. The notes are stored there, and hub messages reach the
   * clients of every instance that uses the same Redis. Without it, notes stay in memory and
   * reach this instance's clients only.
   */
  redisUrl?: string
  /**
   * Whether to verify the TLS certificate of a `rediss://` server. Applies to the app's Redis
   * connection and so to the backplane's, which shares it.
   * @default true
   */
  redisRejectUnauthorized?: boolean
  /**
   * How long the start waits for Redis to accept the app's connection, in ms. Past it, the start
   * fails with `FST_BACKPLANE_REDIS_UNREACHABLE`, which names the last connection error, such as
   * an unknown host. A wrong password or a certificate that fails verification fails at once
   * with `FST_BACKPLANE_REDIS_REJECTED`.
   * @default 10000
   */
  redisConnectTimeout?: number
  /**
   * Prefix of the Redis keys and pub/sub channels, so several apps can share one Redis.
   * @default 'notes-board:'
   */
  redisPrefix?: string
  /**
   * The name of this instance that users see and that notes store, such as Heroku's `web.1`.
   * @default `{hostname}:{process id}`
   */
  instanceId?: string
  /**
   * The secret that signs negotiated connection tokens, the same on every instance.
   * @default a random secret per process, so negotiated tokens work only on the issuing instance
   */
  negotiateSecret?: string
  /** Fastify's `logger` option. @default false */
  logger?: FastifyServerOptions['logger']
  /** A pino logger to use in place of the `logger` option. */
  loggerInstance?: FastifyBaseLogger
  /** Fastify's `trustProxy` option. Turn it on behind a router such as Heroku's. @default false */
  trustProxy?: boolean
  /** Past this many notes, adding a note to a board fails until one is deleted. @default 200 */
  maxNotesPerBoard?: number
  /** How long a board is kept in Redis after its last change, in seconds. @default 2592000 (30 days) */
  boardTtlSeconds?: number
  /** How many boards the in-memory store keeps before it drops the least recently written. @default 1000 */
  maxBoardsInMemory?: number
}

const publicDirectory = fileURLToPath(new URL('../public/', import.meta.url))
/**
 * How long a failed start waits for `close()`. With a Redis server that refuses connections,
 * closing the client that never connected took 64 s in one run.
 */
const FAILED_START_CLOSE_MS = 2000

const signalrBrowserDirectory = dirname(
  createRequire(import.meta.url).resolve('@microsoft/signalr/dist/browser/signalr.min.js')
)

/**
 * Builds the notes board app: static page, SignalR hub at `/noteHub`, `/healthz` and
 * `/api/instance`. Resolves once every plugin has loaded and, with a Redis URL, the Redis
 * connection is ready. The app does not listen. Call `listen()` or `inject()`, and `close()` when done.
 */
export async function buildApp (options: AppOptions = {}): Promise<FastifyInstance> {
  const instanceId = options.instanceId ?? `${hostname()}:${process.pid}`
  const redisPrefix = options.redisPrefix ?? 'notes-board:'
  const maxNotesPerBoard = options.maxNotesPerBoard ?? 200

  const app = options.loggerInstance === undefined
    ? Fastify({ logger: options.logger ?? false, trustProxy: options.trustProxy ?? false })
    : Fastify({ loggerInstance: options.loggerInstance, trustProxy: options.trustProxy ?? false })

  try {
    let store: NoteStore
    if (options.redisUrl !== undefined && options.redisUrl !== '') {
      // parseRedisUrl throws an error whose message never contains the password, and its
      // options carry rejectUnauthorized into ioredis's TLS settings.
      const redisOptions = parseRedisUrl(options.redisUrl, { rejectUnauthorized: options.redisRejectUnauthorized ?? true })
      app.log.info({ host: redisOptions.host, port: redisOptions.port, db: redisOptions.db, tls: redisOptions.tls !== undefined }, 'connecting to Redis')
      // @fastify/redis would wait for a client of its own without a limit while Redis refuses, so
      // the start would end at Fastify's plugin timeout, with an error that names neither Redis nor
      // the cause. connectRedis() waits at most redisConnectTimeout, and logs each outage once.
      const client = await connectRedis(redisOptions, { log: app.log, connectTimeout: options.redisConnectTimeout ?? 10_000 })
      await app.register(fastifyRedis, { client, closeClient: true })

      store = new RedisNoteStore({
        redis: app.redis,
        keyPrefix: redisPrefix,
        maxNotesPerBoard,
        boardTtlSeconds: options.boardTtlSeconds ?? 30 * 24 * 60 * 60,
        log: app.log
      })
    } else {
      store = new MemoryNoteStore({ maxNotesPerBoard, maxBoards: options.maxBoardsInMemory ?? 1000 })
    }

    // The backplane shares the app's client for PUBLISH and opens one more connection, a
    // duplicate of it, for SUBSCRIBE. It logs the errors of that duplicate, and connectRedis()
    // those of the shared client.
    await app.register(backplane, {
      redis: store instanceof RedisNoteStore ? app.redis : undefined,
      channelPrefix: `${redisPrefix}hub:`,
      // The backplane id must be unique among running instances, because each instance drops
      // messages that carry its own id. A DYNO name such as web.1 is not: the dyno that
      // replaces web.1 on a restart can start before the old one has stopped.
      instanceId: `${instanceId}/${randomUUID()}`
    })

    // Registered before the hub, whose own preClose hook closes the connections, so that those
    // disconnects schedule no presence counts, which would only run into the closing backplane.
    const presence = new PresenceNotifier({ groupForBoard, log: app.log })
    app.addHook('preClose', async () => { presence.close() })

    const noteHub = createNoteHub({ store, instanceId, presence })
    await app.register(hub, {
      path: '/noteHub',
      methods: noteHub.methods,
      onDisconnected: noteHub.onDisconnected,
      ...(options.negotiateSecret === undefined ? {} : { negotiateSecret: options.negotiateSecret })
    })

    registerRoutes(app, instanceId)
    addSecurityHeaders(app)
    await app.register(fastifyStatic, { root: publicDirectory })
    await app.register(fastifyStatic, {
      root: signalrBrowserDirectory,
      prefix: '/vendor/signalr/',
      decorateReply: false
    })

    await app.ready()
  } catch (err) {
    app.log.error({ err }, 'app failed to start')
    await Promise.race([app.close(), delay(FAILED_START_CLOSE_MS, undefined, { ref: false })])
    throw err
  }
  return app
}

function registerRoutes (app: FastifyInstance, instanceId: string): void {
  const healthSchema = {
    type: 'object',
    properties: {
      status: { type: 'string', enum: ['ok', 'degraded'] },
      instanceId: { type: 'string' },
      transport: { type: 'string' },
      redisConnected: { type: 'boolean' },
      backplane: {
        type: 'object',
        properties: {
          state: { type: 'string' },
          healthy: { type: 'boolean' },
          subscribedChannels: { type: 'integer' },
          sinceLastMessage: { type: ['number', 'null'] },
          probeRoundTrip: { type: ['number', 'null'] },
          failedProbes: { type: 'integer' }
        }
      }
    }
  }
  app.get('/healthz', { schema: { response: { 200: healthSchema, 503: healthSchema } } }, async (_request, reply) => {
    const health = app.backplane.health()
    const usesRedis = health.transport !== 'in-process'
    // 503 while Redis is configured but messages do not make the round trip: this instance's
    // clients would miss every other instance's notes, so a load balancer should send new
    // clients elsewhere. Its existing clients keep working locally.
    const degraded = usesRedis && !health.healthy
    reply.code(degraded ? 503 : 200)
    return {
      status: degraded ? 'degraded' : 'ok',
      instanceId,
      transport: health.transport,
      redisConnected: usesRedis && app.backplane.connected,
      backplane: {
        state: health.state,
        healthy: health.healthy,
        subscribedChannels: health.subscribedChannels,
        sinceLastMessage: health.sinceLastMessage,
        probeRoundTrip: health.probeRoundTrip,
        failedProbes: health.failedProbes
      }
    }
  })

  // Returns the instance that served this HTTP request. The page shows the instance behind its
  // WebSocket instead, from the hub's GetConnectionInfo, because a router such as Heroku's may send
  // each request to a different instance.
  app.get('/api/instance', async () => ({ instanceId }))
}

/**
 * Restricts the page to its own origin: scripts, styles and the WebSocket come from the server
 * that served it, and no other site may frame it.
 */
function addSecurityHeaders (app: FastifyInstance): void {
  app.addHook('onSend', async (_request, reply) => {
    reply.header('content-security-policy', "default-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
    reply.header('x-content-type-options', 'nosniff')
    reply.header('referrer-policy', 'no-referrer')
  })
}
