import pg from 'pg'
import type { RunLog, RunRecord } from './run-log.js'

/** A run log in one Postgres table (`schema.table`, created if missing). */
export async function openPostgresRunLog(url: string, table: string): Promise<RunLog> {
  if (!/^[a-z_][a-z0-9_]{0,39}\.[a-z_][a-z0-9_]{0,39}$/.test(table)) {
    throw new Error(`run log table must be schema.table in lower case, got ${table}`)
  }
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  // An idle pooled connection that the server ends (a restart in a later fault test of the same
  // worker process) makes the pool emit 'error': without a listener that is an uncaught crash.
  pool.on('error', () => {})
  // Every process may create it at once: IF NOT EXISTS can still race on the type, so retry once.
  const create = `CREATE TABLE IF NOT EXISTS ${table} (
    id text NOT NULL, attempt integer NOT NULL, pid integer NOT NULL, at bigint NOT NULL, planned text NOT NULL)`
  await pool.query(create).catch(() => pool.query(create))
  return {
    async record(run: RunRecord) {
      await pool.query(`INSERT INTO ${table} (id, attempt, pid, at, planned) VALUES ($1, $2, $3, $4, $5)`, [
        run.id,
        run.attempt,
        run.pid,
        run.at,
        run.planned,
      ])
    },
    async readAll() {
      const { rows } = await pool.query<{
        id: string
        attempt: number
        pid: number
        at: string
        planned: string
      }>(`SELECT id, attempt, pid, at, planned FROM ${table}`)
      return rows.map((r) => ({
        id: r.id,
        attempt: r.attempt,
        pid: r.pid,
        at: Number(r.at),
        planned: r.planned === 'fail' ? 'fail' : 'ok',
      }))
    },
    async close() {
      await pool.end()
    },
  }
}
