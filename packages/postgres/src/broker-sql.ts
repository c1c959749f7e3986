import { quoteSchema } from './migrations.js'
import { MAX_PRIORITY } from './priority.js'

const MS = `* interval '1 millisecond'`

/** Default of the broker's `maxStatementBytes`: body bytes per insert statement. */
export const DEFAULT_STATEMENT_BYTES = 64 * 1024 * 1024

const literal = (a: number[]): string => `{${a.join(',')}}`

/**
 * Every statement the broker runs, for one schema. Values are always parameters; the only text
 * interpolated is the validated, quoted schema name. Statements on the hot path carry a `name`
 * so `pg` prepares them once per connection.
 */
export class BrokerSql {
  readonly insertOne: string
  readonly insertMany: string
  readonly fetch: string
  readonly ackFetch: string
  readonly nextDue: string
  readonly ack: string
  readonly nack: string
  readonly deadLetter: string
  readonly extend: string
  readonly release: string
  readonly giveBack: string
  readonly stats: string
  readonly purge: string
  readonly listDead: string
  readonly requeueDead: string
  readonly purgeDead: string
  readonly vacuum: string
  readonly tableSize: string
  /** Valid indexes of the jobs table: quoted name, size, live rows (as of the last VACUUM). */
  readonly indexSizes: string
  /** Invalid indexes left by a failed concurrent rebuild. */
  readonly dropInvalidIndexes: string
  /** Prefix of prepared statement names, unique per schema. */
  readonly prefix: string

  /**
   * The statements that publish checked messages to `queue` and NOTIFY `channel`: a prepared
   * single-row insert, or multi-row inserts whose bodies travel as one binary parameter, cut so
   * that no statement carries more than `maxBytes` of bodies (the caller runs several in one
   * transaction).
   */
  insert(
    queue: string,
    priorities: number[],
    delays: number[],
    bodies: Buffer[],
    channel: string,
    maxBytes = DEFAULT_STATEMENT_BYTES,
  ): { name: string; text: string; values: unknown[] }[] {
    if (bodies.length === 1) {
      return [
        {
          name: `${this.prefix}insert_one`,
          text: this.insertOne,
          values: [queue, priorities[0], delays[0], bodies[0], channel],
        },
      ]
    }
    const statements: { name: string; text: string; values: unknown[] }[] = []
    let start = 0
    while (start < bodies.length) {
      const offsets: number[] = []
      const lengths: number[] = []
      let offset = 1
      let end = start
      // At least one body per statement, however large.
      while (end < bodies.length && (end === start || offset - 1 + bodies[end]!.byteLength <= maxBytes)) {
        offsets.push(offset)
        lengths.push(bodies[end]!.byteLength)
        offset += bodies[end]!.byteLength
        end++
      }
      statements.push({
        name: `${this.prefix}insert_many`,
        text: this.insertMany,
        values: [
          queue,
          literal(priorities.slice(start, end)),
          literal(delays.slice(start, end)),
          Buffer.concat(bodies.slice(start, end), offset - 1),
          channel,
          literal(offsets),
          literal(lengths),
        ],
      })
      start = end
    }
    return statements
  }

  /** Rebuilds one index online; `name` is a quoted name read from the catalog. */
  reindex(name: string): string {
    return `REINDEX INDEX CONCURRENTLY ${catalogName(name)}`
  }

  /** Drops one index online; `name` is a quoted name read from the catalog. */
  dropIndex(name: string): string {
    return `DROP INDEX CONCURRENTLY IF EXISTS ${catalogName(name)}`
  }

  /**
   * `asyncSettle`: leases and settles (fetch, ack, nack, extend, dead-letter, release) commit
   * without waiting for the WAL flush (`synchronous_commit = off` for that transaction only,
   * set inside the statement). Publishes always wait for it.
   */
  constructor(schema: string, asyncSettle: boolean) {
    const s = quoteSchema(schema)
    // A one-row CTE joined into the statement, so set_config runs before commit.
    const cfgCte = asyncSettle ? `cfg AS (SELECT set_config('synchronous_commit', 'off', true) AS v)` : ''
    const withCfg = asyncSettle ? `WITH ${cfgCte}` : ''
    const andCfg = asyncSettle ? `${cfgCte},` : ''
    const joinCfg = asyncSettle ? ', cfg' : ''
    const fromCfg = asyncSettle ? 'FROM cfg' : ''
    const usingCfg = asyncSettle ? 'USING cfg' : ''
    const jobs = `${s}.jobs`
    const dead = `${s}.dead_letters`
    this.prefix = `errand_${schema}_${asyncSettle ? 'a' : 'd'}_`
    // The NOTIFY is part of the statement, so it fires iff the insert commits (also inside a
    // caller's transaction), and a delayed job wakes idle consumers to re-arm their timers.
    this.insertOne = `WITH ins AS (
        INSERT INTO ${jobs} (queue, priority, run_at, body) VALUES ($1, $2, now() + $3::float8 ${MS}, $4))
      SELECT pg_notify($5, '')`
    // A batch sends its bodies as one binary parameter (offsets and lengths alongside): no hex
    // text encoding of bytea[], about twice as fast as unnest($bytea[]).
    this.insertMany = `WITH ins AS (
        INSERT INTO ${jobs} (queue, priority, run_at, body)
        SELECT $1, t.p, now() + t.d ${MS}, substring($4::bytea FROM t.o FOR t.l)
        FROM unnest($2::smallint[], $3::float8[], $6::int[], $7::int[]) WITH ORDINALITY AS t(p, d, o, l, n)
        ORDER BY t.n)
      SELECT pg_notify($5, '')`
    // Fetch, ack, and both at once: one call of lease_jobs() (migration 3), whose plans walk the
    // (queue, priority, run_at, id) index whatever the statistics say. One probe per priority
    // level, highest first; `run_at <= now()` is a range, so delayed rows are never scanned;
    // rows are locked as they are pulled (SKIP LOCKED), so the LIMIT never over-locks.
    const async = asyncSettle ? 'true' : 'false'
    this.fetch = `SELECT * FROM ${s}.lease_jobs(NULL, NULL, $1, $2, $3, ${async})`
    this.ackFetch = `SELECT * FROM ${s}.lease_jobs($1::bigint[], $2::int[], $3, $4, $5, ${async})`
    this.ack = `SELECT * FROM ${s}.lease_jobs($1::bigint[], $2::int[], NULL, 0, 0, ${async})`
    // When to look again (see next_due() in migration 3): the earliest row not leased (a
    // delayed one, or one that became due after the fetch began: then <= 0), or the earliest
    // lease to run out (a holder that died). By the server's clock.
    this.nextDue = `SELECT ${s}.next_due($1) AS wait_ms`
    this.nack = `WITH ${andCfg} u AS (
        UPDATE ${jobs} SET locked_until = NULL,
          run_at = CASE WHEN $3::float8 > 0 THEN now() + $3::float8 ${MS} ELSE run_at END
        ${fromCfg} WHERE id = $1 AND deliveries = $2 RETURNING 1)
      SELECT pg_notify($4, '') FROM u`
    this.deadLetter = `WITH ${andCfg} d AS (
        DELETE FROM ${jobs} ${usingCfg} WHERE id = $1 AND deliveries = $2 RETURNING queue, priority, deliveries, body)
      INSERT INTO ${dead} (queue, priority, deliveries, reason, error, body)
      SELECT queue, priority, deliveries, $3, $4, body FROM d`
    this.extend = `${withCfg} UPDATE ${jobs} SET locked_until = now() + $3::float8 ${MS}
      ${fromCfg} WHERE id = $1 AND deliveries = $2 AND locked_until IS NOT NULL`
    this.release = `WITH ${andCfg} u AS (
        UPDATE ${jobs} AS j SET locked_until = NULL FROM unnest($1::bigint[], $2::int[]) AS a(id, d)${joinCfg}
        WHERE j.id = a.id AND j.deliveries = a.d RETURNING j.queue)
      SELECT DISTINCT queue FROM u`
    // Rows that never reached core (fetched after their consumer was canceled): the lease ends
    // and the delivery is not counted, so it does not spend the redelivery budget. Run at most
    // once ('connect' retry mode): a replay after a lost reply could match a new holder's lease,
    // which has the same counter again.
    this.giveBack = `WITH ${andCfg} u AS (
        UPDATE ${jobs} AS j SET locked_until = NULL, deliveries = j.deliveries - 1
        FROM unnest($1::bigint[], $2::int[]) AS a(id, d)${joinCfg}
        WHERE j.id = a.id AND j.deliveries = a.d AND j.deliveries > 0 RETURNING j.queue)
      SELECT DISTINCT queue FROM u`
    this.stats = `SELECT
        count(*) FILTER (WHERE run_at <= now() AND (locked_until IS NULL OR locked_until <= now()))::int AS ready,
        count(*) FILTER (WHERE run_at > now() AND (locked_until IS NULL OR locked_until <= now()))::int AS delayed,
        count(*) FILTER (WHERE locked_until > now())::int AS in_flight,
        (SELECT count(*) FROM ${dead} WHERE queue = $1)::int AS dead
      FROM ${jobs} WHERE queue = $1`
    this.purge = `DELETE FROM ${jobs} WHERE queue = $1 AND (locked_until IS NULL OR locked_until <= now())`
    this.listDead = `SELECT id, reason, error, body, (extract(epoch FROM dead_at) * 1000)::float8 AS dead_at
      FROM ${dead} WHERE queue = $1 ORDER BY id LIMIT $2`
    // A row dead-lettered for its out-of-range priority comes back in range (the jobs table's
    // constraint would refuse it, failing the whole requeue).
    this.requeueDead = `WITH d AS (
        DELETE FROM ${dead} WHERE queue = $1 AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[]))
        RETURNING id, priority, body),
      ins AS (INSERT INTO ${jobs} (queue, priority, body)
        SELECT $1, least(greatest(priority, 0), ${MAX_PRIORITY}), body FROM d ORDER BY id RETURNING 1)
      SELECT (SELECT count(*) FROM ins)::int AS n, pg_notify($3, '')`
    this.purgeDead = `DELETE FROM ${dead} WHERE queue = $1 AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[]))`
    this.vacuum = `VACUUM ${jobs}`
    this.tableSize = `SELECT pg_table_size('${jobs}'::regclass)::text AS table,
      pg_indexes_size('${jobs}'::regclass)::text AS indexes`
    const indexes = (valid: boolean) => `SELECT format('%I.%I', n.nspname, ic.relname) AS name,
        pg_relation_size(i.indexrelid)::text AS bytes, t.reltuples AS rows
      FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = ic.relnamespace
      WHERE i.indrelid = '${jobs}'::regclass AND ${valid ? '' : 'NOT '}i.indisvalid`
    this.indexSizes = indexes(true)
    this.dropInvalidIndexes = indexes(false)
  }
}

/** A schema-qualified name as `format('%I.%I')` quoted it; anything else is refused. */
function catalogName(name: string): string {
  if (!/^("?)[a-z_][a-z0-9_]*\1\.("?)[a-z_][a-z0-9_]*\2$/.test(name)) {
    throw new TypeError(`unexpected index name ${JSON.stringify(name)}`)
  }
  return name
}
