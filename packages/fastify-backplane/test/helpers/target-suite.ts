import assert from 'node:assert/strict'
import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { BackplaneOptions } from '../../src/index.js'
import { connectTestClient, startInstances, waitForTag } from './scale-out.js'
import type { TestClient } from './scale-out.js'

/**
 * Spreads six clients over three instances, sends one message per target kind, and checks
 * that each client received exactly the messages addressed to it, once each.
 */
export async function checkEveryTargetKind (t: TestContext, backplane: () => BackplaneOptions): Promise<void> {
  const [a, b, c] = await startInstances(t, 3, backplane) as [FastifyInstance, FastifyInstance, FastifyInstance]
  const a1 = await connectTestClient(t, a, 'a1', 'alice', ['g1'])
  const a2 = await connectTestClient(t, a, 'a2', 'bob', ['g2'])
  const b1 = await connectTestClient(t, b, 'b1', 'alice', ['g1', 'g2'])
  const b2 = await connectTestClient(t, b, 'b2', 'carol')
  const c1 = await connectTestClient(t, c, 'c1', 'bob', ['g1'])
  const c2 = await connectTestClient(t, c, 'c2', undefined, ['g2'])
  const everyone = [a1, a2, b1, b2, c1, c2]
  const ids = (clients: TestClient[]): string[] => clients.map((client) => client.id)

  const cases: Array<{ tag: string, send: () => Promise<unknown>, expected: TestClient[] }> = [
    { tag: 'all', send: () => a.broadcast('m', ['all']), expected: everyone },
    { tag: 'all-except', send: () => b.broadcast('m', ['all-except'], { except: ids([a1, b2]) }), expected: [a2, b1, c1, c2] },
    { tag: 'connection', send: () => a.broadcast('m', ['connection'], { connection: c1.id }), expected: [c1] },
    { tag: 'connections', send: () => c.broadcast('m', ['connections'], { connection: ids([a1, b2, c2]) }), expected: [a1, b2, c2] },
    { tag: 'group', send: () => b.broadcast('m', ['group'], { group: 'g1' }), expected: [a1, b1, c1] },
    { tag: 'groups', send: () => a.broadcast('m', ['groups'], { group: ['g1', 'g2'] }), expected: [a1, a2, b1, c1, c2] },
    { tag: 'group-except', send: () => c.broadcast('m', ['group-except'], { group: 'g2', except: b1.id }), expected: [a2, c2] },
    { tag: 'user', send: () => c.broadcast('m', ['user'], { user: 'alice' }), expected: [a1, b1] },
    { tag: 'users', send: () => b.broadcast('m', ['users'], { user: ['alice', 'bob'] }), expected: [a1, b1, a2, c1] },
    { tag: 'context-clients', send: () => a.backplane.hubContext().clients.users(['carol', 'bob']).send('m', 'context-clients'), expected: [b2, a2, c1] },
    { tag: 'caller', send: () => b1.connection.invoke('SendToCaller', 'caller'), expected: [b1] },
    { tag: 'others', send: () => b1.connection.invoke('SendToOthers', 'others'), expected: [a1, a2, b2, c1, c2] },
    { tag: 'others-in-group', send: () => a1.connection.invoke('SendToOthersInGroup', 'g1', 'others-in-group'), expected: [b1, c1] }
  ]
  for (const { send } of cases) await send()

  // Messages from one instance arrive in order, so a final broadcast from each instance marks
  // the point by which everything sent before it has arrived.
  for (const [index, app] of [a, b, c].entries()) await app.broadcast('m', [`done-${index}`])
  await waitForTag(everyone, 'done-0')
  await waitForTag(everyone, 'done-1')
  await waitForTag(everyone, 'done-2')

  for (const client of everyone) {
    const expected = cases.filter((entry) => entry.expected.includes(client)).map((entry) => entry.tag)
    const received = client.received.filter((tag) => !tag.startsWith('done-'))
    assert.deepEqual(received.toSorted(), expected.toSorted(), `messages received by ${client.name}`)
  }
}
