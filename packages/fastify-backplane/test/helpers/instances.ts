import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import type { TestContext } from 'node:test'
import { backplane, hub } from '../../src/index.js'
import type { BackplaneOptions, HubOptions } from '../../src/index.js'

export interface InstanceOptions {
  backplane?: BackplaneOptions
  hub?: Partial<HubOptions> | false
  /** Collects log lines, so a test can assert on them. */
  logLines?: string[]
}

/**
 * Starts a Fastify instance with the backplane and a hub at `/testHub`, listening on a free
 * loopback port, and closes it when the test ends.
 */
export async function startInstance (t: TestContext, options: InstanceOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: loggerOptions(options.logLines) })
  t.after(() => app.close())
  await app.register(backplane, options.backplane ?? {})
  if (options.hub !== false) {
    await app.register(hub, { path: '/testHub', ...options.hub })
  }
  await app.listen({ host: '127.0.0.1', port: 0 })
  return app
}

function loggerOptions (lines: string[] | undefined): object | boolean {
  if (lines === undefined) return false
  return {
    level: 'trace',
    stream: { write: (line: string) => { lines.push(line) } }
  }
}
