import { ProtocolError } from '../errors.js'

/** Sizes of the MessagePack formats without a length field, head byte included. */
const FIXED_SIZES = new Map<number, number>([
  [0xc0, 1], [0xc2, 1], [0xc3, 1], // nil, false, true
  [0xca, 5], [0xcb, 9], // float 32, 64
  [0xcc, 2], [0xcd, 3], [0xce, 5], [0xcf, 9], // uint 8 to 64
  [0xd0, 2], [0xd1, 3], [0xd2, 5], [0xd3, 9], // int 8 to 64
  [0xd4, 3], [0xd5, 4], [0xd6, 6], [0xd7, 10], [0xd8, 18] // fixext 1 to 16: type byte plus data
])

/** The MessagePack formats with a length field: its size, the bytes after it, and what it counts. */
const SIZED_FORMATS = new Map<number, { lengthBytes: 1 | 2 | 4, extraBytes: number, counts: 'bytes' | 'elements' | 'pairs' }>([
  [0xc4, { lengthBytes: 1, extraBytes: 0, counts: 'bytes' }], // bin 8
  [0xc5, { lengthBytes: 2, extraBytes: 0, counts: 'bytes' }], // bin 16
  [0xc6, { lengthBytes: 4, extraBytes: 0, counts: 'bytes' }], // bin 32
  [0xc7, { lengthBytes: 1, extraBytes: 1, counts: 'bytes' }], // ext 8, then a type byte
  [0xc8, { lengthBytes: 2, extraBytes: 1, counts: 'bytes' }], // ext 16
  [0xc9, { lengthBytes: 4, extraBytes: 1, counts: 'bytes' }], // ext 32
  [0xd9, { lengthBytes: 1, extraBytes: 0, counts: 'bytes' }], // str 8
  [0xda, { lengthBytes: 2, extraBytes: 0, counts: 'bytes' }], // str 16
  [0xdb, { lengthBytes: 4, extraBytes: 0, counts: 'bytes' }], // str 32
  [0xdc, { lengthBytes: 2, extraBytes: 0, counts: 'elements' }], // array 16
  [0xdd, { lengthBytes: 4, extraBytes: 0, counts: 'elements' }], // array 32
  [0xde, { lengthBytes: 2, extraBytes: 0, counts: 'pairs' }], // map 16
  [0xdf, { lengthBytes: 4, extraBytes: 0, counts: 'pairs' }] // map 32
])

/** One value's layout: header bytes, data bytes, and how many values it contains. */
interface ValueLayout {
  header: number
  data: number
  children: number
}

/**
 * Checks that `body` contains exactly one MessagePack value whose declared lengths fit in `body`,
 * without decoding it. The decoder allocates an array of the declared size as soon as it reads
 * the header, so five bytes that declare 30 million elements cost hundreds of megabytes before
 * the missing data is noticed. Every value takes at least one byte, so the scan rejects any
 * header that declares more values than the remaining bytes can hold, and decoding afterwards
 * allocates at most one slot per byte of the message. One pass, no recursion. Throws
 * FST_BACKPLANE_PROTOCOL_ERROR on the first violation.
 */
export function checkMessagePackStructure (body: Uint8Array): void {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength)
  const length = body.byteLength
  let position = 0
  // Values still to read: the message itself, then the elements of every open container.
  let pending = 1

  while (pending > 0) {
    if (position >= length) throw new ProtocolError('a MessagePack message ends before the values it declares')
    const { header, data, children } = layoutAt(view, position)
    position += header + data
    if (position > length) throw new ProtocolError('a MessagePack message ends inside a value')
    pending += children - 1
    if (pending > length - position) {
      throw new ProtocolError(`a MessagePack container declares ${children} values, more than the ${length - position} bytes left can hold`)
    }
  }
  if (position !== length) throw new ProtocolError(`a MessagePack message has ${length - position} bytes after its value`)
}

function layoutAt (view: DataView, position: number): ValueLayout {
  const head = view.getUint8(position)
  if (head <= 0x7f || head >= 0xe0) return { header: 1, data: 0, children: 0 } // fixint
  if (head <= 0x8f) return { header: 1, data: 0, children: 2 * (head & 0x0f) } // fixmap
  if (head <= 0x9f) return { header: 1, data: 0, children: head & 0x0f } // fixarray
  if (head <= 0xbf) return { header: 1, data: head & 0x1f, children: 0 } // fixstr

  const fixed = FIXED_SIZES.get(head)
  if (fixed !== undefined) return { header: 1, data: fixed - 1, children: 0 }
  const format = SIZED_FORMATS.get(head)
  // 0xc1 is the one head byte that MessagePack never uses.
  if (format === undefined) throw new ProtocolError(`a MessagePack message contains the unused head byte 0x${head.toString(16)}`)

  const { lengthBytes, extraBytes, counts } = format
  if (position + 1 + lengthBytes > view.byteLength) throw new ProtocolError('a MessagePack message ends inside a length field')
  let count: number
  if (lengthBytes === 1) count = view.getUint8(position + 1)
  else if (lengthBytes === 2) count = view.getUint16(position + 1)
  else count = view.getUint32(position + 1)
  const header = 1 + lengthBytes + extraBytes
  if (counts === 'bytes') return { header, data: count, children: 0 }
  return { header, data: 0, children: counts === 'pairs' ? 2 * count : count }
}
