// The coalescing reference: the floor's server with the delivery of coalescing-delivery.js,
// which builds each frame once and writes the frames of one event-loop turn in one write.
import { createCoalescingDelivery } from './coalescing-delivery.js'
import { runServer } from './harness.js'
import { startRawServer } from './raw-websocket.js'

runServer(({ redisUrl, instance }) => startRawServer({ redisUrl, instance, createDelivery: () => createCoalescingDelivery() }))
