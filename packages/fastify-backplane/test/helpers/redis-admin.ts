import type { TestContext } from 'node:test'
import { Redis } from 'ioredis'
import type { RedisServer } from './redis-server.js'

/** The connection name of the admin client, so that tests can leave it out of client lists. */
export const ADMIN_NAME = 'test-admin'

/** One line of CLIENT LIST, as field-value pairs: `id`, `name`, `addr`, `flags`, `cmd`, ... */
export type ClientInfo = Record<string, string>

/** Opens a test-owned connection to `server` for inspecting it, closed when the test ends. */
export async function connectAdmin (t: TestContext, server: RedisServer, password?: string): Promise<Redis> {
  const admin = new Redis({ host: '127.0.0.1', port: server.port, password, connectionName: ADMIN_NAME, lazyConnect: true })
  await admin.connect()
  t.after(() => { admin.disconnect() })
  return admin
}

/** Lists the server's client connections other than the admin's own. */
export async function listClients (admin: Redis): Promise<ClientInfo[]> {
  const reply = await admin.client('LIST') as string
  return reply
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => Object.fromEntries(line.trim().split(' ').map((field) => {
      const equals = field.indexOf('=')
      return [field.slice(0, equals), field.slice(equals + 1)]
    })))
    .filter((client) => client.name !== ADMIN_NAME)
}

/**
 * Polls `check` every 20 ms until it returns true, and rejects after `timeout` ms. For server
 * state that sends no event, such as a connection that the server has not dropped yet.
 */
export async function waitUntil (description: string, check: () => Promise<boolean>, timeout = 10_000): Promise<void> {
  const deadline = Date.now() + timeout
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting until ${description}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
