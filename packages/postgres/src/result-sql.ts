import { quoteSchema } from './migrations.js'

const MS = `* interval '1 millisecond'`
const FINAL = `('SUCCESS', 'FAILURE', 'CANCELED')`

/**
 * Every statement the result backend runs, for one schema. Values are parameters; only the
 * validated, quoted schema name is interpolated.
 */
export class ResultSql {
  readonly setStates: string
  readonly getState: string
  readonly getStates: string
  readonly completeMember: string
  readonly setIfAbsent: string
  readonly getValue: string
  readonly cleanup: string
  readonly prefix: string

  constructor(schema: string) {
    const s = quoteSchema(schema)
    this.prefix = `errand_${schema}_r_`
    // A batch of writes in one statement (ids are distinct within a batch). A CANCELED record
    // is kept unless it expired; rows that were not written come back as absent (= CANCELED).
    // Final states NOTIFY the waiters' channel with the id. `$1` says whether this batch may
    // commit without waiting for the WAL flush (only when no state in it is final).
    this.setStates = `WITH cfg AS (SELECT set_config('synchronous_commit', $1, true) AS v),
      w AS (
        INSERT INTO ${s}.results AS r (id, state, expires_at, record)
        SELECT t.id, t.state, now() + t.ttl ${MS}, t.record
        FROM unnest($2::text[], $3::text[], $4::float8[], $5::text[]) AS t(id, state, ttl, record), cfg
        ON CONFLICT (id) DO UPDATE
          SET state = EXCLUDED.state, expires_at = EXCLUDED.expires_at, record = EXCLUDED.record
          WHERE r.state <> 'CANCELED' OR r.expires_at <= now()
        RETURNING r.id, r.state)
      SELECT w.id, w.state, CASE WHEN w.state IN ${FINAL} THEN pg_notify($6, w.id) END AS notified FROM w`
    this.getState = `SELECT record FROM ${s}.results WHERE id = $1 AND expires_at > now()`
    this.getStates = `SELECT id, record FROM ${s}.results WHERE id = ANY($1::text[]) AND expires_at > now()`
    // See migration 2: member row, counter and (when complete) the outcomes, in one call.
    this.completeMember = `SELECT completed, size, idxs, outcomes FROM ${s}.complete_group_member($1, $2, $3, $4, $5)`
    // Set unless a live row exists; an expired row is replaced.
    this.setIfAbsent = `INSERT INTO ${s}.kv AS k (key, value, expires_at) VALUES ($1, $2, now() + $3::float8 ${MS})
      ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
        WHERE k.expires_at <= now()
      RETURNING 1`
    this.getValue = `SELECT value FROM ${s}.kv WHERE key = $1 AND expires_at > now()`
    // Expired rows, a bounded batch of each kind per run (no cron needed: writes trigger it).
    this.cleanup = `WITH r AS (
        DELETE FROM ${s}.results WHERE id IN (
          SELECT id FROM ${s}.results WHERE expires_at <= now() ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING 1),
      k AS (
        DELETE FROM ${s}.kv WHERE key IN (
          SELECT key FROM ${s}.kv WHERE expires_at <= now() ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING 1),
      g AS (
        DELETE FROM ${s}.groups WHERE id IN (
          SELECT id FROM ${s}.groups WHERE expires_at <= now() ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING id),
      m AS (DELETE FROM ${s}.group_members m USING g WHERE m.group_id = g.id RETURNING 1)
      SELECT (SELECT count(*) FROM r)::int AS results, (SELECT count(*) FROM k)::int AS kv,
        (SELECT count(*) FROM g)::int AS groups`
  }
}
