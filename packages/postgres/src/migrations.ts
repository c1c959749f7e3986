import { createHash } from 'node:crypto'
import { MIGRATIONS } from './migration-texts.js'
import type { PgPoolClient } from './pg-types.js'

/**
 * Quotes a schema name that {@link resolveConnection} already validated against
 * `/^[a-z_][a-z0-9_]{0,39}$/`. This validated identifier is the only thing ever interpolated into
 * SQL; every value goes in as a parameter.
 */
export function quoteSchema(schema: string): string {
  if (!/^[a-z_][a-z0-9_]{0,39}$/.test(schema))
    throw new TypeError(`invalid schema name ${JSON.stringify(schema)}`)
  return `"${schema}"`
}

/** The LISTEN/NOTIFY channel that wakes consumers of `queue` (a short, fixed-form identifier). */
export function queueChannel(schema: string, queue: string): string {
  const hash = createHash('sha1').update(queue).digest('hex').slice(0, 16)
  return `${schema}_q_${hash}`
}

/** The channel carrying task events (`<id> <event JSON>`, or `<id>` alone when too long for NOTIFY). */
export function eventsChannel(schema: string): string {
  return `${schema}_e`
}

/** The channel carrying ids of tasks that reached a final state. */
export function resultChannel(schema: string): string {
  return `${schema}_r`
}

/** The schema version this package expects. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0

async function currentVersion(client: PgPoolClient, schema: string): Promise<number> {
  const exists = await client.query({
    text: 'SELECT to_regclass($1) IS NOT NULL AS ok',
    values: [`${quoteSchema(schema)}.migrations`],
  })
  if (exists.rows[0]?.ok !== true) return 0
  const res = await client.query({
    text: `SELECT coalesce(max(version), 0)::int AS v FROM ${quoteSchema(schema)}.migrations`,
  })
  return Number(res.rows[0]?.v ?? 0)
}

/**
 * Brings `schema` up to {@link SCHEMA_VERSION}. Idempotent, and safe when many processes run it
 * at once: a session advisory lock keyed by the schema name serialises them, and each migration
 * commits together with its row in `migrations`. Needs the CREATE privilege on the database only
 * when the schema does not exist yet; no superuser.
 *
 * Returns the versions applied by this call. `target` (default: all) exists for tests that build
 * an older schema and upgrade it.
 */
export async function migrateSchema(
  client: PgPoolClient,
  schema: string,
  target = SCHEMA_VERSION,
): Promise<number[]> {
  if ((await currentVersion(client, schema)) >= target) return []
  const s = quoteSchema(schema)
  const lockKey = `errand.migrate.${schema}`
  await client.query({ text: 'SELECT pg_advisory_lock(hashtextextended($1, 0))', values: [lockKey] })
  try {
    const ns = await client.query({ text: 'SELECT 1 FROM pg_namespace WHERE nspname = $1', values: [schema] })
    // CREATE SCHEMA IF NOT EXISTS checks the database CREATE privilege even when the schema
    // exists, so look first: a DBA may create the schema and grant us only that.
    if (ns.rows.length === 0) await client.query({ text: `CREATE SCHEMA ${s}` })
    await client.query({
      text: `CREATE TABLE IF NOT EXISTS ${s}.migrations (
        version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    })
    const have = await currentVersion(client, schema)
    const applied: number[] = []
    for (const m of MIGRATIONS) {
      if (m.version <= have || m.version > target) continue
      await client.query({ text: 'BEGIN' })
      try {
        await client.query({ text: m.sql(s) })
        await client.query({
          text: `INSERT INTO ${s}.migrations (version, name) VALUES ($1, $2)`,
          values: [m.version, m.name],
        })
        await client.query({ text: 'COMMIT' })
      } catch (err) {
        await client.query({ text: 'ROLLBACK' }).catch(() => undefined)
        throw err
      }
      applied.push(m.version)
    }
    return applied
  } finally {
    await client.query({ text: 'SELECT pg_advisory_unlock(hashtextextended($1, 0))', values: [lockKey] })
  }
}
