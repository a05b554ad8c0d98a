import { MessageTooLargeError } from '../errors.js'

/** The byte that ends every JSON message and every handshake message: ASCII record separator. */
export const RECORD_SEPARATOR = 0x1e
export const RECORD_SEPARATOR_CHAR = '\u001e'

/**
 * Splits a byte stream into records ended by 0x1E. WebSocket frames are not message
 * boundaries: one frame may carry several records and one record may span frames, so bytes
 * after the last separator stay buffered until a later chunk completes them.
 */
export class RecordSeparatorSplitter {
  readonly #maximumRecordSize: number
  /** Bytes after the last separator, created only when a record spans chunks, which is rare. */
  #pending: Buffer[] | undefined
  #pendingLength = 0

  constructor (maximumRecordSize: number) {
    this.#maximumRecordSize = maximumRecordSize
  }

  /** Returns the records that `chunk` completes, without their separators. */
  split (chunk: Buffer): Buffer[] {
    const records: Buffer[] = []
    let start = 0
    let end = chunk.indexOf(RECORD_SEPARATOR, start)

    while (end !== -1) {
      records.push(this.#complete(chunk.subarray(start, end)))
      start = end + 1
      end = chunk.indexOf(RECORD_SEPARATOR, start)
    }

    if (start < chunk.length) {
      this.#pendingLength += chunk.length - start
      this.#checkSize(this.#pendingLength)
      this.#pending ??= []
      this.#pending.push(chunk.subarray(start))
    }
    return records
  }

  /** Returns the first record that `chunk` completes and the bytes after it, untouched. */
  splitFirst (chunk: Buffer): { record: Buffer | undefined, rest: Buffer } {
    const end = chunk.indexOf(RECORD_SEPARATOR)
    if (end === -1) {
      this.split(chunk)
      return { record: undefined, rest: Buffer.alloc(0) }
    }
    return { record: this.#complete(chunk.subarray(0, end)), rest: chunk.subarray(end + 1) }
  }

  #complete (tail: Buffer): Buffer {
    if (this.#pendingLength === 0) {
      this.#checkSize(tail.length)
      return tail
    }
    const record = Buffer.concat([...this.#pending!, tail], this.#pendingLength + tail.length)
    this.#pending = undefined
    this.#pendingLength = 0
    this.#checkSize(record.length)
    return record
  }

  #checkSize (size: number): void {
    if (size > this.#maximumRecordSize) {
      throw new MessageTooLargeError(size, this.#maximumRecordSize)
    }
  }
}
