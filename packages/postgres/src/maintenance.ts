import type { BrokerSql } from './broker-sql.js'
import type { Db } from './connection.js'
import type { PgPoolClient } from './pg-types.js'

/** Sizes of the jobs table, in bytes. */
export interface JobsTableSize {
  /** Heap (with TOAST). */
  readonly table: number
  /** All its indexes. */
  readonly indexes: number
}

/** An index is rebuilt by {@link JobsMaintenance.maintain} when larger than this and than its rows need. */
const REINDEX_MIN_BYTES = 8 * 1024 * 1024
/** Generous bytes per live row across both indexes (a fresh index needs about 60). */
const INDEX_BYTES_PER_ROW = 200

/**
 * Keeps the jobs table small. Deleted rows leave dead tuples that only VACUUM makes reusable;
 * autovacuum does that where it runs, and the broker also does it itself every
 * `vacuumAfterDeletes` deletes, so the table stays small without it. One process at a time (a
 * session try-lock on the schema), in the background, never blocking the hot path.
 */
export class JobsMaintenance {
  private readonly db: Db
  private readonly sql: BrokerSql
  private readonly threshold: number
  private deletes = 0
  private running = false

  constructor(db: Db, sql: BrokerSql, vacuumAfterDeletes: number) {
    this.db = db
    this.sql = sql
    this.threshold = vacuumAfterDeletes
  }

  /** Counts deleted rows; starts a background VACUUM past the threshold. */
  deleted(n: number): void {
    if (this.threshold === 0 || n === 0) return
    this.deletes += n
    if (this.deletes < this.threshold || this.running || this.db.isClosed) return
    this.deletes = 0
    this.running = true
    this.locked((client) => client.query({ text: this.sql.vacuum }), false)
      .catch((err: unknown) =>
        this.db.logger.warn(`VACUUM of the jobs table failed: ${(err as Error).message}`),
      )
      .finally(() => {
        this.running = false
      })
  }

  /** Current sizes of the jobs table and its indexes. */
  async size(): Promise<JobsTableSize> {
    const res = await this.db.query<{ table: string; indexes: string }>(
      { text: this.sql.tableSize },
      'idempotent',
    )
    return { table: Number(res.rows[0]?.table ?? 0), indexes: Number(res.rows[0]?.indexes ?? 0) }
  }

  /**
   * VACUUM, then rebuild (`REINDEX INDEX CONCURRENTLY`, online) each index of the jobs table that
   * holds far more pages than its rows need: after a large backlog drained, VACUUM empties and
   * truncates the heap, but B-tree files keep their high-water mark (their pages are reused by
   * the next backlog, not returned). Waits (up to 10 minutes) for a VACUUM another process or a
   * background pass is running. `reindex: false` only VACUUMs.
   */
  async maintain(
    options: { reindex?: boolean } = {},
  ): Promise<{ before: JobsTableSize; after: JobsTableSize; reindexed: string[] }> {
    const before = await this.size()
    const reindexed: string[] = []
    await this.locked(async (client) => {
      await client.query({ text: this.sql.vacuum })
      if (options.reindex === false) return
      const res = await client.query({ text: this.sql.indexSizes })
      for (const row of res.rows as { name: string; bytes: string; rows: number }[]) {
        const bytes = Number(row.bytes)
        if (bytes < REINDEX_MIN_BYTES || bytes < Math.max(0, row.rows) * INDEX_BYTES_PER_ROW * 4) continue
        try {
          await client.query({ text: this.sql.reindex(row.name) })
          reindexed.push(row.name)
        } catch (err) {
          // A failed concurrent rebuild leaves an invalid copy behind: drop it.
          await client.query({ text: this.sql.dropInvalidIndexes }).then(
            (left) =>
              Promise.all(
                (left.rows as { name: string }[]).map((r) =>
                  client.query({ text: this.sql.dropIndex(r.name) }),
                ),
              ),
            () => undefined,
          )
          throw err
        }
      }
    }, true)
    return { before, after: await this.size(), reindexed }
  }

  /** Runs `run` under the schema's maintenance lock: waiting for it, or skipping when it is taken. */
  private async locked(run: (client: PgPoolClient) => Promise<unknown>, wait: boolean): Promise<void> {
    const key = `errand.vacuum.${this.db.schema}`
    await this.db.withClient(async (client) => {
      if (wait) {
        await client.query({ text: "SELECT set_config('lock_timeout', '600s', false)" })
        try {
          await client.query({ text: 'SELECT pg_advisory_lock(hashtextextended($1, 0))', values: [key] })
        } finally {
          await client.query({ text: 'RESET lock_timeout' })
        }
      } else {
        const got = await client.query({
          text: 'SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok',
          values: [key],
        })
        if (got.rows[0]?.ok !== true) return
      }
      try {
        await run(client)
      } finally {
        await client.query({ text: 'SELECT pg_advisory_unlock(hashtextextended($1, 0))', values: [key] })
      }
    })
  }
}
