import type { DeadLetter, DeadLetterReason, QueueStats, SerializedError } from '@errand/core'
import type { SqliteConnection } from './connection.js'

const STATS = `SELECT
  (SELECT count(*) FROM errand_jobs WHERE queue = @queue AND run_at <= @now) AS ready,
  (SELECT count(*) FROM errand_jobs WHERE queue = @queue AND run_at > @now AND leased = 0) AS delayed,
  (SELECT count(*) FROM errand_jobs WHERE queue = @queue AND run_at > @now AND leased = 1) AS in_flight,
  (SELECT count(*) FROM errand_dead_letters WHERE queue = @queue) AS dead`

// A leased row whose lease ran out is due again, so it counts as ready and is purged as such.
const PURGE = `DELETE FROM errand_jobs WHERE queue = @queue AND NOT (leased = 1 AND run_at > @now)`

const LIST_DEAD = `SELECT id, reason, error, body, dead_at FROM errand_dead_letters
  WHERE queue = ? ORDER BY id LIMIT ?`

/** `@ids` is a JSON array of ids, or NULL for all of the queue's. */
const SELECTED = `queue = @queue AND (@ids IS NULL OR id IN (SELECT value FROM json_each(@ids)))`
const REQUEUE_DEAD = `INSERT INTO errand_jobs (queue, priority, run_at, body)
  SELECT queue, priority, @now, body FROM errand_dead_letters WHERE ${SELECTED} ORDER BY id`
const DELETE_DEAD = `DELETE FROM errand_dead_letters WHERE ${SELECTED}`

/**
 * Dead-letter ids (checked strings) are decimal; anything else matches nothing. Undefined means
 * "all".
 */
function idList(ids: readonly string[] | undefined): string | null {
  if (ids === undefined) return null
  return JSON.stringify(ids.filter((id) => /^[0-9]{1,15}$/.test(id)).map(Number))
}

interface DeadRow {
  id: number
  reason: string
  error: string | null
  body: Buffer
  dead_at: number
}

/** Stats, purge and the dead letters of the broker's queues. */
export class QueueAdmin {
  readonly #c: SqliteConnection
  readonly #busyTimeoutMs: number

  constructor(connection: SqliteConnection, busyTimeoutMs: number) {
    this.#c = connection
    this.#busyTimeoutMs = busyTimeoutMs
  }

  stats(queue: string): QueueStats {
    const row = this.#c.read(
      () =>
        this.#c.statement(STATS).get({ queue, now: Date.now() }) as {
          ready: number
          delayed: number
          in_flight: number
          dead: number
        },
    )
    return { ready: row.ready, delayed: row.delayed, inFlight: row.in_flight, dead: row.dead }
  }

  purge(queue: string): Promise<number> {
    return this.#c.write(
      () => this.#c.statement(PURGE).run({ queue, now: Date.now() }).changes,
      this.#busyTimeoutMs,
    )
  }

  /** At most `limit` (checked by the broker) dead letters, oldest first. */
  listDeadLetters(queue: string, limit: number): DeadLetter[] {
    const rows = this.#c.read(() => this.#c.statement(LIST_DEAD).all(queue, limit) as DeadRow[])
    return rows.map((r) => ({
      id: String(r.id),
      queue,
      reason: r.reason as DeadLetterReason,
      error: r.error === null ? undefined : (JSON.parse(r.error) as SerializedError),
      body: r.body,
      deadAt: r.dead_at,
    }))
  }

  /** Moves dead letters back to the queue as new messages (original bytes and priority). */
  requeueDeadLetters(queue: string, ids: readonly string[] | undefined): Promise<number> {
    const list = idList(ids)
    return this.#c.write(() => {
      this.#c.statement(REQUEUE_DEAD).run({ queue, ids: list, now: Date.now() })
      return this.#c.statement(DELETE_DEAD).run({ queue, ids: list }).changes
    }, this.#busyTimeoutMs)
  }

  purgeDeadLetters(queue: string, ids: readonly string[] | undefined): Promise<number> {
    const list = idList(ids)
    return this.#c.write(
      () => this.#c.statement(DELETE_DEAD).run({ queue, ids: list }).changes,
      this.#busyTimeoutMs,
    )
  }
}
