import { test } from 'node:test'
import { InProcessBus } from '../src/index.js'
import { startRedisServer } from './helpers/redis-server.js'
import { checkEveryTargetKind } from './helpers/target-suite.js'

test('every target kind on standalone Redis', async (t) => {
  const redis = await startRedisServer()
  t.after(() => redis.stop())
  await checkEveryTargetKind(t, () => ({ redis: redis.url }))
})

test('every target kind in-process', async (t) => {
  const bus = new InProcessBus()
  await checkEveryTargetKind(t, () => ({ inProcessBus: bus }))
})
