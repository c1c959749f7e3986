import type { DeadLetter, DeadLetterReason, QueueStats } from '@errand/core'
import type { ResultSetHeader, RowDataPacket } from 'mysql2/promise'
import type { MySqlStore } from './store.js'

/** Dead-letter ids as the broker passes them: `undefined` means all. */
type Ids = readonly string[] | undefined

/** Ready, delayed, in-flight and dead counts of `queue`. */
export async function queueStats(store: MySqlStore, queue: string): Promise<QueueStats> {
  const now = Date.now()
  const [rows] = await store.pool.query<RowDataPacket[]>(
    `SELECT COALESCE(SUM(held = 0 AND visible_at <= ?), 0) AS n_ready,
            COALESCE(SUM(held = 0 AND visible_at > ?), 0) AS n_delayed,
            COALESCE(SUM(held = 1), 0) AS n_in_flight,
            (SELECT COUNT(*) FROM ${store.dead} WHERE queue = ?) AS n_dead
     FROM ${store.jobs} WHERE queue = ?`,
    [now, now, queue, queue],
  )
  // An aggregate without GROUP BY: always one row. (`n_`: DELAYED is a reserved word.)
  const c = rows[0]!
  return {
    ready: Number(c.n_ready),
    delayed: Number(c.n_delayed),
    inFlight: Number(c.n_in_flight),
    dead: Number(c.n_dead),
  }
}

/** Remove the ready and delayed rows of `queue` (never held or dead ones). */
export async function purgeQueue(store: MySqlStore, queue: string): Promise<number> {
  const [res] = await store.pool.query<ResultSetHeader>(
    `DELETE FROM ${store.jobs} WHERE queue = ? AND held = 0`,
    [queue],
  )
  return res.affectedRows
}

/** The first `limit` dead letters of `queue`, oldest first. */
export async function listDead(store: MySqlStore, queue: string, limit: number): Promise<DeadLetter[]> {
  const [rows] = await store.pool.query<RowDataPacket[]>(
    `SELECT id, reason, error, dead_at, body FROM ${store.dead} WHERE queue = ? ORDER BY id LIMIT ?`,
    [queue, limit],
  )
  return rows.map((r) => ({
    id: String(r.id),
    queue,
    reason: r.reason as DeadLetterReason,
    error: r.error === null ? undefined : JSON.parse(String(r.error)),
    body: new Uint8Array(r.body as Buffer),
    deadAt: Number(r.dead_at),
  }))
}

/** Put dead letters (by id, or all) back on their queue, in one transaction. */
export async function requeueDead(store: MySqlStore, queue: string, ids: Ids): Promise<number> {
  const filter = idFilter(ids)
  if (filter === null) return 0
  const moved = await store.transaction(async (c) => {
    const [rows] = await c.query<RowDataPacket[]>(
      `SELECT id FROM ${store.dead} WHERE queue = ?${filter.sql} FOR UPDATE`,
      [queue, ...filter.params],
    )
    if (rows.length === 0) return 0
    const list = rows.map((r) => String(r.id))
    await c.query(
      `INSERT INTO ${store.jobs} (queue, priority, visible_at, body)
       SELECT queue, 0, ?, body FROM ${store.dead} WHERE id IN (?) ORDER BY id`,
      [Date.now(), list],
    )
    await c.query(`DELETE FROM ${store.dead} WHERE id IN (?)`, [list])
    return list.length
  })
  if (moved > 0) store.wake(queue)
  return moved
}

/** Delete dead letters (by id, or all). */
export async function purgeDead(store: MySqlStore, queue: string, ids: Ids): Promise<number> {
  const filter = idFilter(ids)
  if (filter === null) return 0
  const [res] = await store.pool.query<ResultSetHeader>(
    `DELETE FROM ${store.dead} WHERE queue = ?${filter.sql}`,
    [queue, ...filter.params],
  )
  return res.affectedRows
}

/**
 * `AND id IN (…)` for the given ids; null when ids names none this table could hold (ids are
 * opaque to callers: one that is not a row number matches nothing, it is not an error).
 */
function idFilter(ids: Ids): { sql: string; params: unknown[] } | null {
  if (ids === undefined) return { sql: '', params: [] }
  const valid = ids.filter((id) => /^\d{1,20}$/.test(id))
  return valid.length === 0 ? null : { sql: ' AND id IN (?)', params: [valid] }
}
