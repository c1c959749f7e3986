/**
 * PostgreSQL, in database `test` at DATABASE_URL. Every run creates its own schema (Errand's
 * migrations, graphile-worker's, pg-boss's, or the raw table) before the clock and drops it
 * (CASCADE) at the end, so no run measures an earlier run's bloat (autovacuum is off here).
 */
import { PostgresBroker, PostgresResultBackend } from '@errand/postgres'
import { Logger, makeWorkerUtils, type Runner, run, type WorkerUtils } from 'graphile-worker'
import pg from 'pg'
import PgBoss from 'pg-boss'
import type { Contender, ContenderMeta, Payload, RunOptions, StoreModule } from '../types.js'
import { errand } from './errand.js'
import { pkgVersion } from './versions.js'

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const quiet = new Logger(() => () => {})
const silent = { warn: () => {}, info: () => {}, error: () => {}, debug: () => {} }

const SYNC = 'every commit waits for the WAL flush (synchronous_commit=on, the server default; fsync on)'
const ERRAND_ASYNC =
  'publishes wait for the WAL flush; leases and settles (fetch, ack) commit with synchronous_commit=off (Errand default)'
const ERRAND_ASYNC_RESULTS = `${ERRAND_ASYNC}; final result records wait for the flush, STARTED records do not`
const RAW_ASYNC = 'inserts wait for the WAL flush; lease and delete commit with synchronous_commit=off'

function withSchema(schema: string): string {
  const url = new URL(DATABASE_URL)
  url.searchParams.set('schema', schema)
  return url.toString()
}

async function sql(text: string, values: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: DATABASE_URL })
  await client.connect()
  try {
    return await client.query(text, values)
  } finally {
    await client.end()
  }
}

const dropSchema = (schema: string) => sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).then(() => {})

function errandPg(
  id: string,
  run: RunOptions,
  results: boolean,
  durableSettle: boolean,
  noEvents = false,
): Contender {
  const schema = `bench_c_${id}`
  const url = withSchema(schema)
  return errand({
    run,
    queue: `q-${id}`,
    broker: () => new PostgresBroker({ url, logger: silent, ...(durableSettle && { durableSettle: true }) }),
    ...(results && { backend: () => new PostgresResultBackend({ url, logger: silent }) }),
    noEvents,
    teardown: () => dropSchema(schema),
  })
}

/** graphile-worker at its defaults (pool 10, LISTEN/NOTIFY, poll 2 s); the queue is the task identifier. */
function graphile(id: string): Contender {
  const schema = `bench_c_${id}`
  const task = `t_${id}`
  let utils: WorkerUtils | undefined
  let runner: Runner | undefined
  return {
    async setup() {
      utils = await makeWorkerUtils({ connectionString: DATABASE_URL, schema, logger: quiet })
      await utils.migrate()
    },
    async enqueueOne(p) {
      await utils!.addJob(task, p)
    },
    async enqueueBulk(ps) {
      await utils!.addJobs(ps.map((payload) => ({ identifier: task, payload })))
    },
    async startWorker(concurrency, onJob) {
      runner = await run({
        connectionString: DATABASE_URL,
        schema,
        concurrency,
        noHandleSignals: true,
        logger: quiet,
        taskList: {
          [task]: async (payload) => {
            await onJob(payload as Payload)
          },
        },
      })
    },
    async stopWorker() {
      await runner?.stop()
      runner = undefined
    },
    async remaining() {
      const r = await sql(`SELECT count(*)::int AS n FROM ${schema}._private_jobs`)
      return r.rows[0].n as number
    },
    async teardown() {
      await utils?.release()
      await dropSchema(schema)
    },
  }
}

/**
 * pg-boss. Its defaults poll every 2 s per worker and fetch one job (0.5 jobs/s at c=1), so it
 * runs with the shape the old bench found fastest: c=1 one worker of batchSize 1; c>1 five
 * workers of batchSize c/5; polling at its 0.5 s minimum; notifyWorker after a full batch
 * (no pause in a backlog). Completed jobs and outputs are kept (its default).
 */
function pgBoss(id: string): Contender {
  const schema = `bench_c_${id}`
  const queue = `q-${id}`
  let boss: PgBoss | undefined
  return {
    async setup() {
      boss = new PgBoss({ connectionString: DATABASE_URL, schema })
      boss.on('error', () => {})
      await boss.start()
      await boss.createQueue(queue)
    },
    async enqueueOne(p) {
      await boss!.send(queue, p)
    },
    async enqueueBulk(ps) {
      await boss!.insert(ps.map((data) => ({ name: queue, data })))
    },
    async startWorker(concurrency, onJob) {
      const workers = concurrency === 1 ? 1 : Math.min(5, concurrency)
      const batchSize = Math.max(1, Math.ceil(concurrency / workers))
      for (let i = 0; i < workers; i++) {
        let wid: string | undefined
        wid = await boss!.work<Payload>(queue, { batchSize, pollingIntervalSeconds: 0.5 }, async (jobs) => {
          const waiting: Promise<void>[] = []
          for (const job of jobs) {
            const w = onJob(job.data)
            if (w) waiting.push(w)
          }
          if (waiting.length > 0) await Promise.all(waiting)
          if (jobs.length === batchSize && wid !== undefined) boss!.notifyWorker(wid)
        })
      }
    },
    async stopWorker() {
      await boss!.offWork(queue)
      // offWork does not wait for the last batch's completion to commit: wait (up to 10 s) for
      // no job of the queue to be active, so the verification does not count those as left over.
      for (let i = 0; i < 100; i++) {
        const r = await sql(
          `SELECT count(*)::int AS n FROM ${schema}.job WHERE name = $1 AND state = 'active'`,
          [queue],
        )
        if (r.rows[0].n === 0) break
        await new Promise((res) => setTimeout(res, 100))
      }
    },
    async remaining() {
      const r = await sql(
        `SELECT count(*)::int AS n FROM ${schema}.job WHERE name = $1 AND state IN ('created', 'retry', 'active')`,
        [queue],
      )
      return r.rows[0].n as number
    },
    async teardown() {
      await boss?.stop({ graceful: false, wait: true }).catch(() => {})
      await dropSchema(schema)
    },
  }
}

/**
 * The raw `pg` floor with Errand's lease, delete and commit mode: INSERT (+ NOTIFY in the same
 * statement, waiting for the flush); workers lease a batch (`UPDATE … SET locked_until,
 * deliveries + 1 FROM (SELECT … FOR UPDATE SKIP LOCKED LIMIT b) RETURNING`), and the next
 * statement deletes the previous batch (matching the delivery count) and leases the next one:
 * one round trip and one commit per batch. Lanes as Errand: from c = 8 up two lanes of c/2,
 * else one lane of c. Idle lanes wait on LISTEN (the latency floor) with a 50 ms safety poll.
 */
function rawPg(id: string, async: boolean): Contender {
  const schema = `bench_c_${id}`
  const t = `${schema}.jobs`
  const channel = `c_${id}`
  let pub: pg.Pool | undefined
  let work: pg.Client[] = []
  let listener: pg.Client | undefined
  let running = false
  let loops: Promise<void>[] = []
  let wake: (() => void)[] = []
  const insertOne = `WITH ins AS (INSERT INTO ${t} (queue, body) VALUES ($1, $2)) SELECT pg_notify('${channel}', '')`
  const insertMany = `WITH ins AS (INSERT INTO ${t} (queue, body) SELECT $1, b FROM unnest($2::bytea[]) AS b)
    SELECT pg_notify('${channel}', '')`
  const lease = `c AS (SELECT id FROM ${t} WHERE queue = $1 AND run_at <= now()
        AND (locked_until IS NULL OR locked_until < now()) ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
      UPDATE ${t} AS j SET locked_until = now() + interval '30 seconds', deliveries = j.deliveries + 1
      FROM c WHERE j.id = c.id RETURNING j.id, j.deliveries, j.body`
  const ackAndLease = `WITH del AS (DELETE FROM ${t} AS d USING unnest($3::bigint[], $4::int[]) AS a(id, n)
        WHERE d.id = a.id AND d.deliveries = a.n), ${lease}`
  return {
    async setup() {
      await sql(`CREATE SCHEMA ${schema}`)
      await sql(`CREATE TABLE ${t} (id bigserial PRIMARY KEY, queue text NOT NULL,
        run_at timestamptz NOT NULL DEFAULT now(), locked_until timestamptz,
        deliveries integer NOT NULL DEFAULT 0, body bytea NOT NULL)`)
      await sql(`CREATE INDEX ON ${t} (queue, run_at, id)`)
      pub = new pg.Pool({ connectionString: DATABASE_URL, max: 4 })
      await pub.query('SELECT 1')
    },
    async enqueueOne(p) {
      await pub!.query({
        name: 'ins1',
        text: insertOne,
        values: [`q-${id}`, Buffer.from(JSON.stringify(p))],
      })
    },
    async enqueueBulk(ps) {
      await pub!.query(insertMany, [`q-${id}`, ps.map((p) => Buffer.from(JSON.stringify(p)))])
    },
    async startWorker(concurrency, onJob) {
      running = true
      const lanes = concurrency >= 8 ? 2 : 1
      const batch = Math.max(1, Math.floor(concurrency / lanes))
      const options = async ? '-c synchronous_commit=off' : '-c synchronous_commit=on'
      work = Array.from({ length: lanes }, () => new pg.Client({ connectionString: DATABASE_URL, options }))
      await Promise.all(work.map((c) => c.connect()))
      listener = new pg.Client({ connectionString: DATABASE_URL })
      await listener.connect()
      listener.on('notification', () => {
        const w = wake
        wake = []
        for (const f of w) f()
      })
      await listener.query(`LISTEN ${channel}`)
      loops = work.map(async (client) => {
        let ids: string[] = []
        let dels: number[] = []
        while (running) {
          const res =
            ids.length === 0
              ? await client.query({ name: 'lease', text: `WITH ${lease}`, values: [`q-${id}`, batch] })
              : await client.query({
                  name: 'ackLease',
                  text: ackAndLease,
                  values: [`q-${id}`, batch, ids, dels],
                })
          ids = []
          dels = []
          const waiting: Promise<void>[] = []
          for (const row of res.rows as { id: string; deliveries: number; body: Buffer }[]) {
            const w = onJob(JSON.parse(row.body.toString()) as Payload)
            if (w) waiting.push(w)
            ids.push(row.id)
            dels.push(row.deliveries)
          }
          if (waiting.length > 0) await Promise.all(waiting)
          if (res.rows.length === 0) {
            await new Promise<void>((r) => {
              const timer = setTimeout(r, 50)
              wake.push(() => {
                clearTimeout(timer)
                r()
              })
            })
          }
        }
        if (ids.length > 0)
          await client.query(
            `DELETE FROM ${t} AS d USING unnest($1::bigint[], $2::int[]) AS a(id, n)
            WHERE d.id = a.id AND d.deliveries = a.n`,
            [ids, dels],
          )
      })
    },
    async stopWorker() {
      running = false
      for (const f of wake) f()
      wake = []
      await Promise.all(loops)
      await Promise.all(work.map((c) => c.end()))
      await listener?.end()
    },
    async remaining() {
      const r = await pub!.query(`SELECT count(*)::int AS n FROM ${t}`)
      return r.rows[0].n as number
    },
    async teardown() {
      await pub?.end()
      await dropSchema(schema)
    },
  }
}

const ERRAND = '@errand/postgres (workspace)'
const GRAPHILE = `graphile-worker ${pkgVersion('graphile-worker')}`
const PGBOSS = `pg-boss ${pkgVersion('pg-boss')}`
const PG = `pg ${pkgVersion('pg')}`

const metas: ContenderMeta[] = [
  {
    name: 'errand',
    class: 'no-results',
    errand: true,
    durability: ERRAND_ASYNC,
    durabilityShort: 'settles async (sync_commit=off)',
    library: ERRAND,
    settings: 'defaults (no result backend; trackStarted on; durableSettle false)',
    floor: 'pg-async',
  },
  {
    name: 'errand-durable',
    class: 'no-results',
    errand: true,
    durability: SYNC,
    durabilityShort: 'every commit flushed',
    library: ERRAND,
    settings: 'defaults + durableSettle: true (no result backend; trackStarted on)',
    floor: 'pg-sync',
  },
  {
    name: 'graphile-worker',
    class: 'no-results',
    durability: SYNC,
    durabilityShort: 'every commit flushed',
    library: GRAPHILE,
    settings: 'defaults (pool 10, LISTEN/NOTIFY, poll 2 s; completed jobs deleted); run({ concurrency })',
    floor: 'pg-sync',
    // Its retry waits exp(attempts) seconds (about 2.7 s the first time), not settable to 0.
    unsupported: ['fail-*'],
  },
  {
    name: 'errand+results',
    class: 'results',
    errand: true,
    durability: ERRAND_ASYNC_RESULTS,
    durabilityShort: 'settles async (sync_commit=off)',
    library: ERRAND,
    settings: 'defaults, PostgresResultBackend (every result stored; trackStarted on)',
    floor: 'pg-async',
  },
  {
    name: 'errand+results-durable',
    class: 'results',
    errand: true,
    durability: `${SYNC} (broker); results: final records wait for the flush, STARTED records do not`,
    durabilityShort: 'every commit flushed (broker)',
    library: ERRAND,
    settings: 'defaults + durableSettle: true, PostgresResultBackend (trackStarted on)',
    floor: 'pg-sync',
  },
  {
    name: 'pg-boss',
    class: 'results',
    durability: SYNC,
    durabilityShort: 'every commit flushed',
    library: PGBOSS,
    settings:
      'pool 10 (default); c=1: 1 worker batchSize 1, c>1: 5 workers batchSize c/5; pollingIntervalSeconds 0.5 (min; default 2) + notifyWorker after a full batch; completed jobs kept',
    floor: 'pg-sync',
    // A batch handler that throws fails the whole batch: not the same failure path. Its set-up
    // creates the queue, not to be repeated by worker processes.
    unsupported: ['fail-*', 'drain-c*-p*'],
  },
  {
    name: 'raw-async',
    class: 'floor',
    durability: RAW_ASYNC,
    durabilityShort: 'settles async (sync_commit=off)',
    library: PG,
    settings:
      "Errand's lease + delete-at-ack, ack and next lease in one statement, 2 lanes of c/2 from c=8, LISTEN wake-up",
    floor: 'pg-async',
    // No retry path (a failed row would wait out its 30 s lease); its set-up creates the schema,
    // not to be repeated by worker processes.
    unsupported: ['fail-*', 'drain-c*-p*'],
  },
  {
    name: 'raw-sync',
    class: 'floor',
    durability: SYNC,
    durabilityShort: 'every commit flushed',
    library: PG,
    settings: 'as raw-async, every commit waits for the flush',
    floor: 'pg-sync',
    unsupported: ['fail-*', 'drain-c*-p*'],
  },
]

export const store: StoreModule = {
  metas,
  create(name, id, run = {}) {
    switch (name) {
      case 'errand':
        return errandPg(id, run, false, false)
      case 'errand-durable':
        return errandPg(id, run, false, true)
      case 'errand+results':
        return errandPg(id, run, true, false)
      case 'errand+results-durable':
        return errandPg(id, run, true, true)
      // Diagnostics, not in the published set: the result backend without task events.
      case 'diag-errand+results-noevents':
        return errandPg(id, run, true, false, true)
      case 'graphile-worker':
        return graphile(id)
      case 'pg-boss':
        return pgBoss(id)
      case 'raw-async':
        return rawPg(id, true)
      case 'raw-sync':
        return rawPg(id, false)
    }
    throw new Error(`unknown postgres contender ${name}`)
  },
  async versions() {
    const r = await sql(
      `SELECT version() AS v, current_setting('synchronous_commit') AS sc, current_setting('fsync') AS f,
        current_setting('autovacuum') AS av, current_setting('wal_sync_method') AS ws`,
    )
    const row = r.rows[0] as Record<string, string>
    return {
      postgresql: row.v!.split(' ').slice(0, 2).join(' '),
      'server settings': `synchronous_commit=${row.sc}, fsync=${row.f}, wal_sync_method=${row.ws}, autovacuum=${row.av}`,
      'graphile-worker': pkgVersion('graphile-worker'),
      'pg-boss': pkgVersion('pg-boss'),
      pg: pkgVersion('pg'),
    }
  },
}
