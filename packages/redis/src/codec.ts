import type { DeadLetterReason, SerializedError } from '@errand/core'

const COLON = 0x3a
const NEWLINE = 0x0a

/** The wake-up item (see broker-scripts.ts); never a real message. */
export const WAKE_ITEM = '!'

/**
 * Builds a stored item: `<id>:<deliveries>:<priority>:<body>`. Ids never contain `:`.
 */
export function encodeItem(id: string, priority: number, body: Uint8Array): Buffer {
  const header = `${id}:0:${priority}:`
  const item = Buffer.allocUnsafe(header.length + body.byteLength)
  item.write(header, 0, 'latin1')
  item.set(body, header.length)
  return item
}

/** A stored item, read back. `body` is a view into `item`. */
export interface DecodedItem {
  readonly id: string
  /** Deliveries before this one. */
  readonly deliveries: number
  readonly priority: number
  readonly body: Buffer
}

/** Parses an item built by {@link encodeItem} (and rewritten by the scripts). */
export function decodeItem(item: Buffer): DecodedItem {
  const a = item.indexOf(COLON)
  const b = item.indexOf(COLON, a + 1)
  const c = item.indexOf(COLON, b + 1)
  if (a < 0 || b < 0 || c < 0) throw new Error('malformed item: missing header fields')
  return {
    id: item.toString('latin1', 0, a),
    deliveries: parseDecimal(item, a + 1, b),
    priority: parseDecimal(item, b + 1, c),
    body: item.subarray(c + 1),
  }
}

function parseDecimal(buf: Buffer, start: number, end: number): number {
  let n = 0
  for (let i = start; i < end; i++) n = n * 10 + (buf[i]! - 48)
  return n
}

/** The header of a dead-letter record, before the newline and the item. */
export interface DeadHeader {
  readonly reason: DeadLetterReason
  readonly error?: SerializedError
  readonly deadAt: number
}

/** Splits a dead-letter record into its header and item. */
export function decodeDeadRecord(record: Buffer): { header: DeadHeader; item: DecodedItem } {
  const nl = record.indexOf(NEWLINE)
  if (nl < 0) throw new Error('malformed dead-letter record')
  const header = JSON.parse(record.toString('utf8', 0, nl)) as DeadHeader
  return { header, item: decodeItem(record.subarray(nl + 1)) }
}
