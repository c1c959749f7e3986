import { type DeadLetterReason, isTaskState, type SerializedError, type TaskRecord } from '@errand/core'

const COLON = 0x3a
const NEWLINE = 0x0a

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

/** Longest counts the scripts accept (they must stay exact integers in Lua); see `parse` there. */
const MAX_DELIVERY_DIGITS = 9
const MAX_PRIORITY_DIGITS = 3

/**
 * Parses an item built by {@link encodeItem} (and rewritten by the scripts). Returns `undefined`
 * for anything else: the same rule as the scripts' `parse`, so the scripts dead-letter garbage
 * before it gets here, and this stays a second line of defence that never throws.
 */
export function decodeItem(item: Buffer): DecodedItem | undefined {
  const a = item.indexOf(COLON)
  if (a < 1) return undefined
  const b = item.indexOf(COLON, a + 1)
  if (b < 0) return undefined
  const c = item.indexOf(COLON, b + 1)
  if (c < 0) return undefined
  const deliveries = parseDecimal(item, a + 1, b, MAX_DELIVERY_DIGITS)
  const priority = parseDecimal(item, b + 1, c, MAX_PRIORITY_DIGITS)
  if (deliveries === undefined || priority === undefined) return undefined
  return { id: item.toString('latin1', 0, a), deliveries, priority, body: item.subarray(c + 1) }
}

/** 1..`maxDigits` ASCII digits between `start` and `end`, else `undefined`. */
function parseDecimal(buf: Buffer, start: number, end: number, maxDigits: number): number | undefined {
  if (end <= start || end - start > maxDigits) return undefined
  let n = 0
  for (let i = start; i < end; i++) {
    const digit = buf[i]! - 48
    if (digit < 0 || digit > 9) return undefined
    n = n * 10 + digit
  }
  return n
}

/**
 * The lease a delivery of `item` would hold (`<text before the first colon>:<count + 1>`), for an
 * item the scripts took into flight but {@link decodeItem} refuses; `undefined` when not even that
 * can be read.
 */
export function leaseOfRawItem(item: Buffer): string | undefined {
  const a = item.indexOf(COLON)
  const b = a < 1 ? -1 : item.indexOf(COLON, a + 1)
  if (b < 0) return undefined
  const deliveries = parseDecimal(item, a + 1, b, MAX_DELIVERY_DIGITS)
  return deliveries === undefined ? undefined : `${item.toString('latin1', 0, a)}:${deliveries + 1}`
}

/** The header of a dead-letter record, before the newline and the item. */
export interface DeadHeader {
  readonly reason: DeadLetterReason
  readonly error?: SerializedError
  readonly deadAt: number
}

/**
 * Splits a dead-letter record into its header and body. A record the broker did not write (no
 * header line, a header that is not ours, an item that is not one) never throws: it is listed as
 * `undecodable` with its bytes as the body.
 */
export function decodeDeadRecord(record: Buffer): { header: DeadHeader; body: Buffer } {
  const nl = record.indexOf(NEWLINE)
  if (nl >= 0) {
    const header = parseHeader(record.toString('utf8', 0, nl))
    const rest = record.subarray(nl + 1)
    if (header !== undefined) return { header, body: decodeItem(rest)?.body ?? rest }
  }
  return { header: { reason: 'undecodable', deadAt: 0 }, body: record }
}

function parseHeader(text: string): DeadHeader | undefined {
  try {
    const h = JSON.parse(text) as Partial<DeadHeader> | null
    if (typeof h !== 'object' || h === null || typeof h.reason !== 'string') return undefined
    return { reason: h.reason, ...(h.error ? { error: h.error } : {}), deadAt: Number(h.deadAt) || 0 }
  } catch {
    return undefined
  }
}

/**
 * A task record as the result backend stores it (JSON with a known `state`), or `undefined` for
 * anything else (a hand edit, a stray PUBLISH): callers decide, nothing throws.
 */
export function parseTaskRecord(json: string): TaskRecord | undefined {
  try {
    const record = JSON.parse(json) as TaskRecord | null
    if (typeof record !== 'object' || record === null || !isTaskState(record.state)) return undefined
    return record
  } catch {
    return undefined
  }
}
