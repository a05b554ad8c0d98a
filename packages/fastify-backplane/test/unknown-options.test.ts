import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import { backplane, hub } from '../src/index.js'
import type { BackplaneOptions, HubOptions } from '../src/index.js'

/** Registers the plugins with these options and returns the error that ready() fails with. */
async function readyError (backplaneOptions: object, hubOptions?: object): Promise<Error & { code?: string }> {
  const app = Fastify()
  try {
    void app.register(backplane, backplaneOptions as BackplaneOptions)
    if (hubOptions !== undefined) void app.register(hub, hubOptions as HubOptions)
    await app.ready()
  } catch (err) {
    return err as Error & { code?: string }
  } finally {
    await app.close()
  }
  assert.fail('ready() succeeded')
}

test('misspelled options fail ready', async () => {
  const cases: Array<{ backplane: object, hub?: object, message: string }> = [
    { backplane: { chanelPrefix: 'x:' }, message: 'Invalid option "chanelPrefix": is not an option of this plugin. Did you mean "channelPrefix"?' },
    { backplane: {}, hub: { path: '/h', keepAliveIntervall: 5 }, message: 'Invalid option "keepAliveIntervall": is not an option of this plugin. Did you mean "keepAliveInterval"?' },
    { backplane: {}, hub: { path: '/h', Methods: {} }, message: 'Invalid option "Methods": is not an option of this plugin. Did you mean "methods"?' },
    { backplane: { colour: 'red' }, message: 'Invalid option "colour": is not an option of this plugin. Remove it.' }
  ]
  for (const { backplane: backplaneOptions, hub: hubOptions, message } of cases) {
    const err = await readyError(backplaneOptions, hubOptions)
    assert.equal(err.code, 'FST_BACKPLANE_INVALID_OPTION', message)
    assert.equal(err.message, message)
  }
})

test("register's own options are accepted", async () => {
  const app = Fastify()
  await app.register(backplane, { logLevel: 'warn' })
  await app.register(hub, { path: '/h', prefix: '/api', logLevel: 'warn' } as HubOptions)
  await app.ready()
  await app.close()
})
