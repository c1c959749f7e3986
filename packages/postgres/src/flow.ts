import { type FlowControlStore, flowChecks, type Lifecycle } from '@errand/core'
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
    const window = checkMs('takeRate', 'perMs', flowChecks.takeRate(key, max, perMs))
    checkText('takeRate', 'key', key)
    // Not retried after a lost connection: the start may have been recorded.
    const res = await this.#db.query<{ wait: number }>(
      { name: `${this.#sql.prefix}rate`, text: this.#sql.takeRate, values: [key, max, window] },
      'connect',
    )
    this.#written()
    return Number(res.rows[0]?.wait ?? 0)
  }

  async acquireSlot(key: string, holder: string, max: number, leaseMs: number): Promise<boolean> {
    this.#lifecycle.assertOpen('acquireSlot')
    const lease = checkMs('acquireSlot', 'leaseMs', flowChecks.acquireSlot(key, holder, max, leaseMs))
    checkSlot('acquireSlot', key, holder)
    // A replay finds the slot held by `holder` (renewed again) or still free: safe to retry.
    const res = await this.#db.query<{ held: boolean }>(
      {
        name: `${this.#sql.prefix}acquire`,
        text: this.#sql.acquireSlot,
        values: [key, holder, max, lease],
      },
      'idempotent',
    )
    this.#written()
    return res.rows[0]?.held === true
  }

  async releaseSlot(key: string, holder: string): Promise<void> {
    this.#lifecycle.assertOpen('releaseSlot')
    flowChecks.releaseSlot(key, holder)
    checkSlot('releaseSlot', key, holder)
    await this.#db.query(
      { name: `${this.#sql.prefix}release`, text: this.#sql.releaseSlot, values: [key, holder] },
      'idempotent',
    )
  }

  async setPaused(queue: string, paused: boolean): Promise<void> {
    this.#lifecycle.assertOpen('setPaused')
    flowChecks.setPaused(queue, paused)
    checkText('setPaused', 'queue', queue)
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
    const ttl = checkMs('putValue', 'ttlMs', flowChecks.putValue(key, value, ttlMs))
    checkText('putValue', 'key', key)
    checkText('putValue', 'value', value)
    // Not replayed after a lost connection: it could overwrite a later put of another process.
    await this.#db.query(
      { name: `${this.#sql.prefix}put`, text: this.#sql.putValue, values: [key, value, ttl] },
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

// PostgreSQL's own limits, checked after core's flowChecks (which every store shares).

/** Text columns cannot hold NUL. */
function checkText(method: string, what: string, value: string): void {
  if (value.includes('\u0000')) {
    throw new TypeError(`${method}: ${what} contains a NUL character, which PostgreSQL text cannot hold`)
  }
}

/** A slot's key and holder: text, and together small enough for one B-tree entry. */
function checkSlot(method: string, key: string, holder: string): void {
  checkText(method, 'key', key)
  checkText(method, 'holder', holder)
  const bytes = Buffer.byteLength(key) + Buffer.byteLength(holder)
  if (bytes > MAX_SLOT_BYTES) {
    throw new TypeError(
      `${method}: key and holder take ${bytes} bytes of UTF-8 together, over the ${MAX_SLOT_BYTES} a slot can have`,
    )
  }
}

/** A duration short enough for a timestamp (below ~285,000 years); returns it. */
function checkMs(method: string, what: string, ms: number): number {
  if (ms > Number.MAX_SAFE_INTEGER) {
    throw new TypeError(`${method}: ${what} must be at most ${Number.MAX_SAFE_INTEGER} ms, got ${ms}`)
  }
  return ms
}
