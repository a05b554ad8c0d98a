import { HttpTransportType, HubConnectionBuilder, LogLevel } from '@microsoft/signalr'
import type { HubConnection } from '@microsoft/signalr'
import type { FastifyInstance } from 'fastify'
import type { TestContext } from 'node:test'
import type { BackplaneOptions, HubConnectionContext } from '../../src/index.js'
import { startInstance } from './instances.js'
import { baseUrl } from './signalr.js'

/** Hub methods that let a test drive group membership and caller-relative targets. */
export const scaleOutMethods = {
  Whoami: (context: HubConnectionContext) => context.connectionId,
  JoinGroup: async (context: HubConnectionContext, group: string) => { await context.groups.add(group) },
  LeaveGroup: async (context: HubConnectionContext, group: string) => { await context.groups.remove(group) },
  SendToCaller: async (context: HubConnectionContext, tag: string) => { await context.clients.caller.send('m', tag) },
  SendToOthers: async (context: HubConnectionContext, tag: string) => { await context.clients.others.send('m', tag) },
  SendToOthersInGroup: async (context: HubConnectionContext, group: string, tag: string) => {
    await context.clients.othersInGroup(group).send('m', tag)
  }
}

/** A connected official client, its connection id, and every tag it received on method `m`. */
export interface TestClient {
  name: string
  connection: HubConnection
  id: string
  received: string[]
}

/** Starts `count` instances with the scale-out hub methods, authenticating users by token. */
export async function startInstances (t: TestContext, count: number, backplane: () => BackplaneOptions): Promise<FastifyInstance[]> {
  const instances: FastifyInstance[] = []
  for (let index = 0; index < count; index++) {
    instances.push(await startInstance(t, {
      backplane: backplane(),
      hub: {
        methods: scaleOutMethods,
        authenticate: (_request, token) => token
      }
    }))
  }
  return instances
}

/** Connects a client as `user` (anonymous when undefined) and joins it to `groups`. */
export async function connectTestClient (t: TestContext, app: FastifyInstance, name: string, user: string | undefined, groups: string[] = []): Promise<TestClient> {
  const connection = new HubConnectionBuilder()
    .withUrl(baseUrl(app) + '/testHub', {
      skipNegotiation: true,
      transport: HttpTransportType.WebSockets,
      ...(user === undefined ? {} : { accessTokenFactory: () => user })
    })
    .configureLogging(LogLevel.None)
    .build()
  await connection.start()
  t.after(() => connection.stop())
  const client: TestClient = { name, connection, id: await connection.invoke('Whoami'), received: [] }
  connection.on('m', (tag: string) => { client.received.push(tag) })
  for (const group of groups) await connection.invoke('JoinGroup', group)
  return client
}

/**
 * Waits until every client received `tag`, so that every message sent before it on the same
 * path has arrived too.
 */
export async function waitForTag (clients: TestClient[], tag: string, timeout = 10_000): Promise<void> {
  const deadline = Date.now() + timeout
  while (!clients.every((client) => client.received.includes(tag))) {
    if (Date.now() > deadline) {
      const missing = clients.filter((client) => !client.received.includes(tag)).map((client) => client.name)
      throw new Error(`${missing.join(', ')} did not receive "${tag}" within ${timeout} ms`)
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
