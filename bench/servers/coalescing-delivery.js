// The coalescing reference's delivery, which the minimal SignalR server shares: each WebSocket
// frame is built once with ws's Sender.frame(), and every frame that arrives within one
// event-loop turn reaches each socket in a single write. A setImmediate() callback, which runs
// after the poll phase that read the Redis messages or after the timer that published them,
// flushes the turn's frames.
import WebSocket, { Sender } from 'ws'

const TEXT_FRAME = { fin: true, rsv1: false, opcode: 0x01, mask: false, readOnly: false }

/**
 * Returns `deliver(sockets, payload)` for startRawServer(). `encode(payload)` returns the bytes
 * that one text frame carries; by default the payload itself.
 */
export function createCoalescingDelivery (encode = (payload) => payload) {
  let pending = []

  function flush () {
    const batch = pending
    pending = []
    const sameTargets = batch.every((entry) => entry.sockets === batch[0].sockets)
    if (sameTargets) {
      // Every frame of the turn goes to the same sockets, so one concatenation serves them all.
      const bytes = batch.length === 1 ? batch[0].frame : Buffer.concat(batch.map((entry) => entry.frame))
      for (const socket of batch[0].sockets) write(socket, bytes)
      return
    }
    const framesBySocket = new Map()
    for (const { frame, sockets } of batch) {
      for (const socket of sockets) {
        const frames = framesBySocket.get(socket)
        if (frames === undefined) framesBySocket.set(socket, [frame])
        else frames.push(frame)
      }
    }
    for (const [socket, frames] of framesBySocket) write(socket, frames.length === 1 ? frames[0] : Buffer.concat(frames))
  }

  return (sockets, payload) => {
    const frame = Buffer.concat(Sender.frame(encode(payload), TEXT_FRAME))
    if (pending.length === 0) setImmediate(flush)
    pending.push({ frame, sockets })
  }
}

/** Writes whole frames to the TCP socket under `ws`, which sends nothing else meanwhile. */
function write (socket, bytes) {
  if (socket.readyState === WebSocket.OPEN) socket._socket.write(bytes)
}
