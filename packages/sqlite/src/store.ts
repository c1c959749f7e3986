import type { DeadLetterInfo } from '@errand/core'
import type { SqliteConnection } from './connection.js'

/** Priorities 0..MAX_PRIORITY; higher first. */
export const MAX_PRIORITY = 9

/** A row as a fetch returns it. */
export interface FetchedRow {
  readonly id: number
  readonly deliveries: number
  readonly body: Buffer
}

const LEVELS = Array.from({ length: MAX_PRIORITY + 1 }, (_, i) => MAX_PRIORITY - i)

/** Levels (high first) with a row due at `@now`: one index seek per level, in one statement. */
const DUE_LEVELS = LEVELS.map(
  (p) =>
    `SELECT ${p} AS p WHERE EXISTS (SELECT 1 FROM errand_jobs WHERE queue = @queue AND priority = ${p} AND run_at <= @now)`,
).join(' UNION ALL ')

/** The earliest `run_at` of the queue (due time or lease expiry), over every level. */
const NEXT_DUE = `SELECT min(${LEVELS.map(
  (p) =>
    `coalesce((SELECT min(run_at) FROM errand_jobs WHERE queue = @queue AND priority = ${p}), 9007199254740991)`,
).join(', ')}) AS due`

const TAKE = `UPDATE errand_jobs SET run_at = @until, leased = 1, deliveries = deliveries + 1
  WHERE id IN (SELECT id FROM errand_jobs WHERE queue = @queue AND priority = @priority AND run_at <= @now
               ORDER BY run_at, id LIMIT @limit)
  RETURNING id, deliveries, body`

const INSERT = `INSERT INTO errand_jobs (queue, priority, run_at, body) VALUES (?, ?, ?, ?)`
const ACK = `DELETE FROM errand_jobs WHERE id = ? AND deliveries = ?`
const RETURN = `UPDATE errand_jobs SET leased = 0, run_at = ? WHERE id = ? AND deliveries = ? AND leased = 1`
const EXTEND = `UPDATE errand_jobs SET run_at = ? WHERE id = ? AND deliveries = ? AND leased = 1`
const BURY = `INSERT INTO errand_dead_letters (queue, priority, reason, error, body, dead_at)
  SELECT queue, priority, ?, ?, body, ? FROM errand_jobs WHERE id = ? AND deliveries = ?`

/**
 * The job verbs, one statement each (the caller provides the transaction). Every settle matches
 * `(id, deliveries)`: `deliveries` grows with each delivery, so it is the lease's fencing token and
 * a holder whose lease ran out and was handed to someone else changes nothing.
 */
export class JobStore {
  readonly #c: SqliteConnection

  constructor(connection: SqliteConnection) {
    this.#c = connection
  }

  insert(queue: string, priority: number, runAt: number, body: Uint8Array): void {
    this.#c.statement(INSERT).run(queue, priority, runAt, body)
  }

  /** Priority levels, high first, that have a row due at `now`. Read-only. */
  dueLevels(queue: string, now: number): number[] {
    return this.#c.statement(DUE_LEVELS).pluck().all({ queue, now }) as number[]
  }

  /** Ms from `now` to the queue's earliest due time or lease expiry; undefined when empty. */
  nextDue(queue: string, now: number): number | undefined {
    const due = this.#c.statement(NEXT_DUE).pluck().get({ queue }) as number
    return due >= Number.MAX_SAFE_INTEGER ? undefined : Math.max(0, due - now)
  }

  /** Leases up to `limit` due rows of `queue`, highest priority first, oldest first. */
  take(queue: string, limit: number, now: number, leaseMs: number): FetchedRow[] {
    const out: FetchedRow[] = []
    for (const level of this.dueLevels(queue, now)) {
      const rows = this.#c
        .statement(TAKE)
        .all({ queue, priority: level, now, until: now + leaseMs, limit: limit - out.length }) as FetchedRow[]
      // RETURNING gives no order: restore FIFO (ids grow with publish order).
      rows.sort((a, b) => a.id - b.id)
      for (const row of rows) out.push(row)
      if (out.length >= limit) break
    }
    return out
  }

  /** Deletes a delivered row; false when the lease was lost. */
  ack(id: number, deliveries: number): boolean {
    return this.#c.statement(ACK).run(id, deliveries).changes > 0
  }

  /** Makes a delivered row due again at `runAt`; false when the lease was lost. */
  giveBack(id: number, deliveries: number, runAt: number): boolean {
    return this.#c.statement(RETURN).run(runAt, id, deliveries).changes > 0
  }

  /** Moves the lease's end to `until`; false when the lease was lost. */
  extend(id: number, deliveries: number, until: number): boolean {
    return this.#c.statement(EXTEND).run(until, id, deliveries).changes > 0
  }

  /** Moves a delivered row to the dead letters (original bytes); false when the lease was lost. */
  bury(id: number, deliveries: number, info: DeadLetterInfo, now: number): boolean {
    const error = info.error === undefined ? null : JSON.stringify(info.error)
    const moved = this.#c.statement(BURY).run(info.reason, error, now, id, deliveries).changes > 0
    if (moved) this.ack(id, deliveries)
    return moved
  }
}
