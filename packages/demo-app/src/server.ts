import type { FastifyInstance } from 'fastify'
import { requestSerializer } from 'fastify-backplane'
import { pino } from 'pino'
import { buildApp } from './app.js'
import { readServerConfig } from './config.js'
import type { ServerConfig } from './config.js'

// Heroku sends SIGTERM and kills the process 30 s later. Closing waits up to 2 s for clients to
// acknowledge the WebSocket close (the hub's default closeTimeout), then sends Redis QUIT. The
// backplane bounds its QUIT at 5 s, but @fastify/redis waits for its own QUIT without a limit,
// so a Redis that stops responding would hold the close until this forced exit.
const FORCED_EXIT_DELAY_MS = 10_000

// Starts at info because LOG_LEVEL is validated with the rest of the configuration below.
// The request serializer redacts access_token and connection tokens from logged URLs.
const log = pino({ level: 'info', serializers: { req: requestSerializer, err: pino.stdSerializers.err } })

let config: ServerConfig
try {
  config = readServerConfig(process.env)
} catch (err) {
  log.fatal({ err }, 'invalid configuration')
  process.exit(1)
}
log.level = config.logLevel

let app: FastifyInstance
try {
  app = await buildApp({
    redisUrl: config.redisUrl,
    redisRejectUnauthorized: config.redisRejectUnauthorized,
    instanceId: config.instanceId,
    ...(config.negotiateSecret === undefined ? {} : { negotiateSecret: config.negotiateSecret }),
    loggerInstance: log,
    trustProxy: config.behindProxy
  })
} catch {
  // buildApp has already logged the error and closed what it opened.
  process.exit(1)
}

try {
  await app.listen({ port: config.port, host: config.host })
} catch (err) {
  app.log.fatal({ err, host: config.host, port: config.port }, 'server failed to listen')
  await app.close()
  process.exit(1)
}

let closing = false

async function shutDown (signal: NodeJS.Signals): Promise<void> {
  if (closing) {
    app.log.warn({ signal }, 'second signal received during shutdown; exiting now')
    process.exit(1)
  }
  closing = true
  app.log.info({ signal, instanceId: config.instanceId }, 'shutting down')

  const forcedExit = setTimeout(() => {
    app.log.error({ signal, delayMs: FORCED_EXIT_DELAY_MS }, 'shutdown did not finish in time; exiting')
    process.exit(1)
  }, FORCED_EXIT_DELAY_MS)
  // The timer must not keep the process alive once everything else has closed.
  forcedExit.unref()

  try {
    await app.close()
    app.log.info({ signal }, 'server closed')
  } catch (err) {
    app.log.error({ err, signal }, 'closing the server failed')
    process.exitCode = 1
  }
}

process.on('SIGTERM', (signal) => { void shutDown(signal) })
process.on('SIGINT', (signal) => { void shutDown(signal) })
