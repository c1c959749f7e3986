import { quoteSchema } from './migrations.js'

const MS = `* interval '1 millisecond'`

/**
 * Every statement of flow control (see migration 7 for the tables and the two functions), for
 * one schema. Values are parameters; only the validated, quoted schema name is interpolated.
 */
export class FlowSql {
  readonly takeRate: string
  readonly acquireSlot: string
  readonly releaseSlot: string
  readonly pause: string
  readonly resume: string
  readonly paused: string
  readonly putValue: string
  readonly sweep: string
  readonly prefix: string

  constructor(schema: string) {
    const s = quoteSchema(schema)
    this.prefix = `errand_${schema}_f_`
    this.takeRate = `SELECT ${s}.take_rate($1, $2, $3) AS wait`
    this.acquireSlot = `SELECT ${s}.acquire_slot($1, $2, $3, $4) AS held`
    this.releaseSlot = `DELETE FROM ${s}.flow_slot WHERE key = $1 AND holder = $2`
    this.pause = `INSERT INTO ${s}.flow_paused (queue) VALUES ($1) ON CONFLICT (queue) DO NOTHING`
    this.resume = `DELETE FROM ${s}.flow_paused WHERE queue = $1`
    this.paused = `SELECT queue FROM ${s}.flow_paused`
    // The kv row setIfAbsent / getValue use, replaced whatever it holds.
    this.putValue = `INSERT INTO ${s}.kv AS k (key, value, expires_at) VALUES ($1, $2, now() + $3::float8 ${MS})
      ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at`
    // Rows of keys nobody calls any more (active keys delete their own): a bounded batch of each.
    // Skipping locked rows never blocks a call; deleting a row a call could still count is
    // harmless, since only rows already out of the window (or lease) have expired.
    this.sweep = `WITH r AS (
        DELETE FROM ${s}.flow_rate WHERE (key, at) IN (
          SELECT key, at FROM ${s}.flow_rate WHERE expires_at <= now() ORDER BY expires_at LIMIT $1
          FOR UPDATE SKIP LOCKED)
        RETURNING 1),
      l AS (
        DELETE FROM ${s}.flow_slot WHERE (key, holder) IN (
          SELECT key, holder FROM ${s}.flow_slot WHERE expires_at <= now() ORDER BY expires_at LIMIT $1
          FOR UPDATE SKIP LOCKED)
        RETURNING 1)
      SELECT (SELECT count(*) FROM r)::int AS rates, (SELECT count(*) FROM l)::int AS slots`
  }
}
