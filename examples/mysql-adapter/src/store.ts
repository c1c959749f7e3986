import {
  type CheckedMessage,
  ConnectionError,
  type DeadLetterInfo,
  type DeliveryInit,
  maskCredentials,
} from '@errand/core'
import {
  createPool,
  type Pool,
  type PoolConnection,
  type ResultSetHeader,
  type RowDataPacket,
} from 'mysql2/promise'
import { ADAPTER, type ResolvedMySqlOptions } from './options.js'
import { migrate } from './schema.js'
import { WakeBus } from './wake-bus.js'

/** Bytes per INSERT: well under MariaDB's default 16 MiB max_allowed_packet at the largest body. */
const INSERT_BYTES = 8 * 1024 * 1024
/**
 * Every statement on a taken row says this: `deliveries` after the take is the delivery's
 * `attempt` and its fence, so a holder whose lease ran out (and whose row was taken again)
 * changes nothing.
 */
const FENCE = 'id = ? AND deliveries = ? AND held = 1'

/**
 * A taken row, as a take returns it and as the statements on it need it (a `MySqlDelivery` is
 * one): `attempt` is the row's `deliveries` after the take.
 */
export interface HeldRow extends DeliveryInit {
  readonly queue: string
}

/**
 * The broker's tables and the statements run on them: publish, take, and each settle of a
 * taken row (ack, dead-letter, extend, give back for a nack or at close), fenced on its take count.
 */
export class MySqlStore {
  readonly pool: Pool
  /** The quoted table names. */
  readonly jobs: string
  readonly dead: string
  /** Which tables these are, the prefix of their queues' events on this process's {@link WakeBus}. */
  readonly #wakeKey: string

  private constructor(pool: Pool, options: ResolvedMySqlOptions) {
    this.pool = pool
    this.jobs = `\`${options.table}_jobs\``
    this.dead = `\`${options.table}_dead\``
    const u = new URL(options.connectionUri)
    this.#wakeKey = `${u.host}${u.pathname}/${options.table}\u0000`
  }

  /** Open a pool and create the tables if missing; `ERR_CONNECTION` if the server refuses. */
  static async open(options: ResolvedMySqlOptions): Promise<MySqlStore> {
    const pool = createPool({
      uri: options.connectionUri,
      connectionLimit: options.poolSize,
      connectTimeout: 5_000,
      supportBigNumbers: true,
      bigNumberStrings: true,
    })
    // READ COMMITTED: a take's locks cover only the rows it returns, so competing consumers
    // skip exactly those and take the next ones.
    pool.pool.on('connection', (c) => {
      c.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED')
    })
    try {
      await migrate(pool, options.table)
    } catch (err) {
      await pool.end().catch(() => {})
      const why = maskCredentials(String((err as Error).message))
      const where = new URL(options.connectionUri).host
      throw new ConnectionError(`mysql: cannot open ${where}: ${why}`, { adapter: ADAPTER, cause: err })
    }
    return new MySqlStore(pool, options)
  }

  /** Wake this process's idle consumers of `queue`. */
  wake(queue: string): void {
    WakeBus.emit(this.#wakeKey + queue)
  }

  /** Call `wake` whenever this process publishes to or gives back rows of `queue`; returns the unsubscribe. */
  onWake(queue: string, wake: () => void): () => void {
    WakeBus.on(this.#wakeKey + queue, wake)
    return () => WakeBus.off(this.#wakeKey + queue, wake)
  }

  /** Insert the messages, all or nothing (one transaction when it takes several statements). */
  async publish(queue: string, messages: readonly CheckedMessage[]): Promise<void> {
    const now = Date.now()
    const rows = (batch: CheckedMessage[]) =>
      batch.map((m) => [queue, m.priority, now + m.delayMs, Buffer.from(m.body)])
    const sql = `INSERT INTO ${this.jobs} (queue, priority, visible_at, body) VALUES ?`
    // One INSERT per INSERT_BYTES of bodies; several run in one transaction: all or nothing.
    const batches: CheckedMessage[][] = [[]]
    let bytes = 0
    for (const m of messages) {
      if (bytes > 0 && bytes + m.body.byteLength > INSERT_BYTES) {
        batches.push([])
        bytes = 0
      }
      batches.at(-1)!.push(m)
      bytes += m.body.byteLength
    }
    if (batches.length === 1) await this.pool.query(sql, [rows(batches[0]!)])
    else
      await this.transaction(async (c) => {
        for (const batch of batches) await c.query(sql, [rows(batch)])
      })
    this.wake(queue)
  }

  /**
   * Take up to `n` visible rows of `queue` for `leaseMs`: lock them (`SKIP LOCKED`: competing
   * consumers take the next ones), mark them held until the lease's end and count the take.
   */
  take(queue: string, n: number, leaseMs: number): Promise<HeldRow[]> {
    const now = Date.now()
    return this.transaction(async (c) => {
      // The index order lets the scan stop after n rows; a filesort would lock every due row.
      const [ids] = await c.query<RowDataPacket[]>(
        `SELECT id FROM ${this.jobs} FORCE INDEX (fetch_order)
         WHERE queue = ? AND visible_at <= ? ORDER BY priority DESC, id LIMIT ? FOR UPDATE SKIP LOCKED`,
        [queue, now, n],
      )
      if (ids.length === 0) return []
      const list = ids.map((r) => String(r.id))
      await c.query(
        `UPDATE ${this.jobs} SET held = 1, visible_at = ?, deliveries = deliveries + 1 WHERE id IN (?)`,
        [now + leaseMs, list],
      )
      const [rows] = await c.query<RowDataPacket[]>(
        `SELECT id, deliveries, body FROM ${this.jobs} WHERE id IN (?) ORDER BY priority DESC, id`,
        [list],
      )
      return rows.map((r) => ({
        queue,
        messageId: String(r.id),
        attempt: Number(r.deliveries),
        body: new Uint8Array(r.body as Buffer),
      }))
    })
  }

  /** When the queue's next invisible row (delayed or leased) becomes visible, if any. */
  async nextVisibleAt(queue: string): Promise<number | undefined> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT MIN(visible_at) AS next FROM ${this.jobs} WHERE queue = ? AND visible_at > ?`,
      [queue, Date.now()],
    )
    const next = rows[0]?.next
    return next === null || next === undefined ? undefined : Number(next)
  }

  /** Delete the row. */
  async ack(row: HeldRow): Promise<void> {
    await this.pool.query(`DELETE FROM ${this.jobs} WHERE ${FENCE}`, [row.messageId, row.attempt])
  }

  /** Move the row to the dead letters: copy and delete in one transaction. */
  deadLetter(row: HeldRow, info: DeadLetterInfo): Promise<void> {
    const error = info.error === undefined ? null : JSON.stringify(info.error)
    return this.transaction(async (c) => {
      const [moved] = await c.query<ResultSetHeader>(
        `INSERT INTO ${this.dead} (queue, reason, error, dead_at, body)
         SELECT queue, ?, ?, ?, body FROM ${this.jobs} WHERE ${FENCE}`,
        [info.reason, error, Date.now(), row.messageId, row.attempt],
      )
      if (moved.affectedRows > 0) await c.query(`DELETE FROM ${this.jobs} WHERE id = ?`, [row.messageId])
    })
  }

  /** Push the lease to `ms` from now; false when no row matched (the row was taken again). */
  async extend(row: HeldRow, ms: number): Promise<boolean> {
    // mysql2 connects with FOUND_ROWS: affectedRows counts matched rows, changed or not.
    const [res] = await this.pool.query<ResultSetHeader>(
      `UPDATE ${this.jobs} SET visible_at = ? WHERE ${FENCE}`,
      [Date.now() + ms, row.messageId, row.attempt],
    )
    return res.affectedRows > 0
  }

  /**
   * Make the rows visible again after `delayMs` (a nack; at close or cancel, every held row at
   * once) and wake their queues' consumers.
   */
  async giveBack(rows: readonly HeldRow[], delayMs = 0): Promise<void> {
    if (rows.length === 0) return
    // `id IN` finds the rows by primary key; the row comparison is the fence of each.
    const [res] = await this.pool.query<ResultSetHeader>(
      `UPDATE ${this.jobs} SET held = 0, visible_at = ? WHERE id IN (?) AND held = 1 AND (id, deliveries) IN (?)`,
      [Date.now() + delayMs, rows.map((r) => r.messageId), rows.map((r) => [r.messageId, r.attempt])],
    )
    if (res.affectedRows > 0) for (const queue of new Set(rows.map((r) => r.queue))) this.wake(queue)
  }

  /** Run `run` in one transaction on one connection of the pool. */
  async transaction<T>(run: (c: PoolConnection) => Promise<T>): Promise<T> {
    const c = await this.pool.getConnection()
    try {
      await c.beginTransaction()
      const out = await run(c)
      await c.commit()
      return out
    } catch (err) {
      await c.rollback().catch(() => {})
      throw err
    } finally {
      c.release()
    }
  }
}
