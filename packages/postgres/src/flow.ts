import { type FlowControlStore, type Lifecycle, MAX_FLOW_KEY_LENGTH } from '@errand/core'
import type { Db } from './connection.js'
import { FlowSql } from './flow-sql.js'

/** How many expired rows of each kind a sweep deleted. */
export interface FlowSweep {
  readonly rates: number
  readonly slots: number
}

/** SQLSTATE undefined_table: the schema is older than migration 7 (migrate: false). */
const UNDEFINED_TABLE = '42P01'
/**
 * UTF-8 bytes of key + holder: a B-tree entry of the slots' primary key must stay under about
 * 2.7 kB. Two ASCII strings of the longest length fit easily.
 */
const MAX_SLOT_BYTES = 2400

/**
 * {@link FlowControlStore} on PostgreSQL, one round trip per call: `takeRate` and `acquireSlot`
 * call a function of migration 7 that serialises the calls of one key under a transaction
 * advisory lock and reads `clock_timestamp()` after taking it; the others are one statement.
 * Commits are as durable as the backend's other writes (`synchronous_commit` left as it is).
 */
export class PostgresFlow implements FlowControlStore {
  readonly #db: Db
  readonly #lifecycle: Lifecycle
  readonly #sql: FlowSql
  readonly #written: () => void

  /**
   * `lifecycle` is the backend's (ERR_CLOSED after its close); `written` runs after each write
   * (the backend's background sweep hooks in there).
   */
  constructor(db: Db, lifecycle: Lifecycle, schema: string, written: () => void) {
    this.#db = db
    this.#lifecycle = lifecycle
    this.#sql = new FlowSql(schema)
    this.#written = written
  }

  async takeRate(key: string, max: number, perMs: number): Promise<number> {
    this.#lifecycle.assertOpen('takeRate')
    checkText(key, 'key', MAX_FLOW_KEY_LENGTH)
    checkCount(max, 'max')
    checkMs(perMs, 'perMs')
    // Not retried after a lost connection: the start may have been recorded.
    const res = await this.#db.query<{ wait: number }>(
      { name: `${this.#sql.prefix}rate`, text: this.#sql.takeRate, values: [key, max, perMs] },
      'connect',
    )
    this.#written()
    return Number(res.rows[0]?.wait ?? 0)
  }

  async acquireSlot(key: string, holder: string, max: number, leaseMs: number): Promise<boolean> {
    this.#lifecycle.assertOpen('acquireSlot')
    checkText(key, 'key', MAX_FLOW_KEY_LENGTH)
    checkText(holder, 'holder', MAX_FLOW_KEY_LENGTH)
    checkSlotBytes(key, holder)
    checkCount(max, 'max')
    checkMs(leaseMs, 'leaseMs')
    // A replay finds the slot held by `holder` (renewed again) or still free: safe to retry.
    const res = await this.#db.query<{ held: boolean }>(
      {
        name: `${this.#sql.prefix}acquire`,
        text: this.#sql.acquireSlot,
        values: [key, holder, max, leaseMs],
      },
      'idempotent',
    )
    this.#written()
    return res.rows[0]?.held === true
  }

  async releaseSlot(key: string, holder: string): Promise<void> {
    this.#lifecycle.assertOpen('releaseSlot')
    checkText(key, 'key', MAX_FLOW_KEY_LENGTH)
    checkText(holder, 'holder', MAX_FLOW_KEY_LENGTH)
    await this.#db.query(
      { name: `${this.#sql.prefix}release`, text: this.#sql.releaseSlot, values: [key, holder] },
      'idempotent',
    )
  }

  async setPaused(queue: string, paused: boolean): Promise<void> {
    this.#lifecycle.assertOpen('setPaused')
    checkText(queue, 'queue', MAX_FLOW_KEY_LENGTH)
    if (typeof paused !== 'boolean') throw new TypeError(`paused must be a boolean, got ${typeof paused}`)
    await this.#db.query(
      paused
        ? { name: `${this.#sql.prefix}pause`, text: this.#sql.pause, values: [queue] }
        : { name: `${this.#sql.prefix}resume`, text: this.#sql.resume, values: [queue] },
      'idempotent',
    )
  }

  async pausedQueues(): Promise<string[]> {
    this.#lifecycle.assertOpen('pausedQueues')
    const res = await this.#db.query<{ queue: string }>(
      { name: `${this.#sql.prefix}paused`, text: this.#sql.paused },
      'idempotent',
    )
    // Sorted here, by UTF-16 code units as everywhere in JS (the database's collation differs).
    return res.rows.map((r) => r.queue).sort()
  }

  async putValue(key: string, value: string, ttlMs: number): Promise<void> {
    this.#lifecycle.assertOpen('putValue')
    checkText(key, 'key', MAX_FLOW_KEY_LENGTH)
    if (typeof value !== 'string') throw new TypeError(`value must be a string, got ${typeof value}`)
    if (value.includes('\u0000'))
      throw new TypeError('value contains a NUL character, which PostgreSQL text cannot hold')
    checkMs(ttlMs, 'ttlMs')
    // Not replayed after a lost connection: it could overwrite a later put of another process.
    await this.#db.query(
      { name: `${this.#sql.prefix}put`, text: this.#sql.putValue, values: [key, value, ttlMs] },
      'connect',
    )
    this.#written()
  }

  /** Deletes expired rate and slot rows (a batch of each); nothing before migration 7. */
  async sweep(batch: number): Promise<FlowSweep> {
    try {
      const res = await this.#db.query<FlowSweep>({ text: this.#sql.sweep, values: [batch] }, 'idempotent')
      return res.rows[0] ?? { rates: 0, slots: 0 }
    } catch (err) {
      if ((err as { code?: unknown }).code === UNDEFINED_TABLE) return { rates: 0, slots: 0 }
      throw err
    }
  }
}

function checkText(value: unknown, what: string, max: number): asserts value is string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    throw new TypeError(
      `${what} must be a non-empty string of at most ${max} characters, got ${
        typeof value === 'string' ? `${value.length} characters` : typeof value
      }`,
    )
  }
  if (value.includes('\u0000'))
    throw new TypeError(`${what} contains a NUL character, which PostgreSQL text cannot hold`)
}

function checkSlotBytes(key: string, holder: string): void {
  const bytes = Buffer.byteLength(key) + Buffer.byteLength(holder)
  if (bytes > MAX_SLOT_BYTES) {
    throw new TypeError(
      `key and holder take ${bytes} bytes of UTF-8 together, over the ${MAX_SLOT_BYTES} a slot can have`,
    )
  }
}

function checkCount(value: unknown, what: string): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new TypeError(`${what} must be an integer >= 1, got ${String(value)}`)
  }
}

/** A duration: positive, finite, and short enough for a timestamp (below ~285,000 years). */
function checkMs(value: unknown, what: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > Number.MAX_SAFE_INTEGER) {
    throw new TypeError(`${what} must be a positive number of ms, got ${String(value)}`)
  }
}
