import type { SqliteConnection } from './connection.js'

const RATE_DROP = `DELETE FROM errand_rate WHERE key = ? AND at <= ?`
const RATE_COUNT = `SELECT count(*) FROM errand_rate WHERE key = ?`
// The start whose leaving brings the count below max: the oldest while count = max (the usual
// case), a later one when max was lowered since the rows were recorded.
const RATE_FREED_BY = `SELECT at FROM errand_rate WHERE key = ? ORDER BY at LIMIT 1 OFFSET ?`
const RATE_ADD = `INSERT INTO errand_rate (key, at, expires_at) VALUES (?, ?, ?)`

const SLOT_DROP_EXPIRED = `DELETE FROM errand_slots WHERE key = ? AND expires_at <= ?`
const SLOT_RENEW = `UPDATE errand_slots SET expires_at = ? WHERE key = ? AND holder = ?`
const SLOT_COUNT = `SELECT count(*) FROM errand_slots WHERE key = ?`
const SLOT_ADD = `INSERT INTO errand_slots (key, holder, expires_at) VALUES (?, ?, ?)`
const SLOT_RELEASE = `DELETE FROM errand_slots WHERE key = ? AND holder = ?`

const PAUSE = `INSERT OR IGNORE INTO errand_paused (queue) VALUES (?)`
const RESUME = `DELETE FROM errand_paused WHERE queue = ?`
const PAUSED = `SELECT queue FROM errand_paused`

// The same table as setIfAbsent / getValue (results-sql.ts), overwriting whatever is there.
const PUT_VALUE = `INSERT INTO errand_kv (key, value, expires_at) VALUES (@key, @value, @expires)
  ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`

const SWEEP_RATE = `DELETE FROM errand_rate WHERE id IN
  (SELECT id FROM errand_rate WHERE expires_at <= @now LIMIT @limit)`
const SWEEP_SLOTS = `DELETE FROM errand_slots WHERE (key, holder) IN
  (SELECT key, holder FROM errand_slots WHERE expires_at <= @now LIMIT @limit)`

/**
 * The flow-control verbs. Each write runs inside the caller's `BEGIN IMMEDIATE` transaction,
 * which makes its read-then-write atomic across every process on the file; `now` is the
 * caller's `Date.now()` (the processes sharing a file share a machine, hence a clock).
 */
export class FlowSql {
  readonly #c: SqliteConnection

  constructor(connection: SqliteConnection) {
    this.#c = connection
  }

  /** 0 when a start was recorded; else ms until one leaves the window (1 to `perMs`). */
  takeRate(key: string, max: number, perMs: number, now: number): number {
    this.#c.statement(RATE_DROP).run(key, now - perMs)
    const count = this.#c.statement(RATE_COUNT).pluck().get(key) as number
    if (count < max) {
      this.#c.statement(RATE_ADD).run(key, now, now + perMs)
      return 0
    }
    const at = this.#c
      .statement(RATE_FREED_BY)
      .pluck()
      .get(key, count - max) as number
    // Clamped: a start stamped ahead of `now` (the clock stepped back) never means a longer wait.
    return Math.min(perMs, Math.max(1, at + perMs - now))
  }

  /** True when `holder` holds a slot of `key` after the call (taken now or renewed). */
  acquireSlot(key: string, holder: string, max: number, leaseMs: number, now: number): boolean {
    this.#c.statement(SLOT_DROP_EXPIRED).run(key, now)
    const expires = now + leaseMs
    if (this.#c.statement(SLOT_RENEW).run(expires, key, holder).changes > 0) return true
    const held = this.#c.statement(SLOT_COUNT).pluck().get(key) as number
    if (held >= max) return false
    this.#c.statement(SLOT_ADD).run(key, holder, expires)
    return true
  }

  releaseSlot(key: string, holder: string): void {
    this.#c.statement(SLOT_RELEASE).run(key, holder)
  }

  setPaused(queue: string, paused: boolean): void {
    this.#c.statement(paused ? PAUSE : RESUME).run(queue)
  }

  /** Paused queues in JavaScript's string order (SQLite's byte order differs past U+FFFF). */
  pausedQueues(): string[] {
    return (this.#c.statement(PAUSED).pluck().all() as string[]).sort()
  }

  putValue(key: string, value: string, ttlMs: number, now: number): void {
    this.#c.statement(PUT_VALUE).run({ key, value, expires: now + ttlMs })
  }

  /** Deletes up to `limit` expired rows of each kind; returns how many of each. */
  sweep(now: number, limit: number): { rates: number; slots: number } {
    const rates = this.#c.statement(SWEEP_RATE).run({ now, limit }).changes
    const slots = this.#c.statement(SWEEP_SLOTS).run({ now, limit }).changes
    return { rates, slots }
  }
}
