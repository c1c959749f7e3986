/**
 * PostgreSQL contenders, side by side in database `test`, each in its own schema:
 * - `errand postgres`: Errand's app + worker over @errand/postgres's PostgresBroker, no results;
 * - `errand postgres + results`: the same with every result stored in PostgresResultBackend;
 * - `errand pg broker`: the PostgresBroker alone (publish / consume / ack), the adapter's floor;
 * - `pg-boss 10.4.2`, tuned for throughput (batch fetch, shortest polling interval, notifyWorker);
 * - `graphile-worker 0.17.3`, default and with its local queue (the settings of its performance page);
 * - raw `pg` SKIP LOCKED loops: one job per query, and 50 per query (delete-on-fetch, no ack).
 *
 * Run: cd bench && pnpm exec tsx --conditions=source src/cli.ts --store postgres
 * Growth (drain rate with a backlog of 1,000,000 vs 20,000, and the jobs table's size before,
 * at the peak and after draining): pnpm exec tsx --conditions=source src/contenders/postgres.ts growth
 */
import { writeFile } from 'node:fs/promises'
import { pathToFileURL } from 'node:url'
import { PostgresBroker, PostgresResultBackend } from '@errand/postgres'
import { Logger, makeWorkerUtils, type Runner, run, type WorkerUtils } from 'graphile-worker'
import pg from 'pg'
import PgBoss from 'pg-boss'
import type { BenchPayload, Contender, ContenderSet } from '../contender.js'
import { brokerContender } from './broker-only.js'
import { errandContender } from './errand.js'

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const _encoder = new TextEncoder()
const _decoder = new TextDecoder()
const silentLogger = { warn: () => {} }
const quiet = new Logger(() => () => {})

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

function withSchema(schema: string): string {
  const url = new URL(DATABASE_URL)
  url.searchParams.set('schema', schema)
  return url.toString()
}

/** @errand/postgres's broker on its own: the adapter's floor under the Errand app. */
function errandBroker(): Contender {
  return brokerContender({
    name: 'errand pg broker',
    broker: () => new PostgresBroker({ url: withSchema('bench_errand'), logger: silentLogger }),
  })
}

/** pg-boss: one worker per 50 of concurrency, each fetching a batch; polling at its 0.5 s minimum. */
function pgBoss(): Contender {
  let boss: PgBoss | undefined
  let queue = ''
  return {
    name: 'pg-boss 10.4.2',
    async open(q) {
      queue = q
      boss = new PgBoss({ connectionString: DATABASE_URL, schema: 'bench_pgboss', max: 20, schedule: false })
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
      // Its documented throughput knobs: batchSize (jobs per fetch, completed together), the
      // polling interval (0.5 s minimum) and notifyWorker(id), which skips the wait before the
      // next fetch: called when a fetch came back full, so a backlog drains without pauses.
      // Several workers let fetches overlap; five batch workers was the fastest shape we found.
      const workers = concurrency === 1 ? 1 : 5
      const batchSize = Math.max(1, Math.ceil(concurrency / workers))
      for (let i = 0; i < workers; i++) {
        let id: string | undefined
        id = await boss!.work<BenchPayload>(
          queue,
          { batchSize, pollingIntervalSeconds: 0.5 },
          async (jobs) => {
            for (const job of jobs) onJob(job.data)
            if (jobs.length === batchSize && id !== undefined) boss!.notifyWorker(id)
          },
        )
      }
    },
    async stopWorker() {
      await boss!.offWork(queue)
    },
    async close() {
      // deleteQueue refuses while any job (completed ones too) references the queue.
      await boss!.getDb().executeSql('DELETE FROM bench_pgboss.job WHERE name = $1', [queue])
      await boss!.deleteQueue(queue).catch(() => {})
      await boss!.stop({ graceful: false, wait: true })
    },
  }
}

/** graphile-worker: the task identifier is the bench queue (its "queue_name" would serialise jobs). */
function graphileWorker(localQueue: boolean): Contender {
  let utils: WorkerUtils | undefined
  let runner: Runner | undefined
  let queue = ''
  const schema = 'bench_graphile'
  return {
    name: localQueue ? 'graphile-worker 0.17.3 localQueue' : 'graphile-worker 0.17.3',
    async open(q) {
      queue = q
      utils = await makeWorkerUtils({ connectionString: DATABASE_URL, schema })
      await utils.migrate()
    },
    async enqueueOne(p) {
      await utils!.addJob(queue, p)
    },
    async enqueueBulk(ps) {
      await utils!.addJobs(ps.map((payload) => ({ identifier: queue, payload })))
    },
    async startWorker(concurrency, onJob) {
      runner = await run({
        connectionString: DATABASE_URL,
        schema,
        concurrency,
        noHandleSignals: true,
        pollInterval: 2000,
        logger: quiet,
        taskList: {
          [queue]: async (payload) => {
            onJob(payload as BenchPayload)
          },
        },
        preset: {
          worker: {
            maxPoolSize: Math.max(10, concurrency + 2),
            ...(localQueue
              ? { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 }
              : {}),
          },
        },
      })
    },
    async stopWorker() {
      await runner?.stop()
      runner = undefined
    },
    async close() {
      await utils!.withPgClient((client) =>
        client.query(
          `DELETE FROM ${schema}._private_jobs j USING ${schema}._private_tasks t
          WHERE j.task_id = t.id AND t.identifier = $1`,
          [queue],
        ),
      )
      await utils!.release()
    },
  }
}

/**
 * Raw `pg`: INSERT to enqueue; workers loop on `DELETE … WHERE id IN (SELECT … FOR UPDATE SKIP
 * LOCKED LIMIT n) RETURNING` (delete on fetch: no lease, no ack, at-most-once), polling every
 * millisecond when empty. `perQuery` 1: one loop per unit of concurrency; 50: one loop per 50.
 */
function raw(perQuery: number): Contender {
  const schema = 'bench_raw'
  let pool: pg.Pool | undefined
  let queue = ''
  let running = false
  let loops: Promise<void>[] = []
  return {
    name: `raw pg SKIP LOCKED ${perQuery}/query`,
    async open(q) {
      queue = q
      pool = new pg.Pool({ connectionString: DATABASE_URL, max: 60 })
      await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`).catch(() => {})
      await pool
        .query(
          `CREATE TABLE IF NOT EXISTS ${schema}.jobs (id bigserial PRIMARY KEY, queue text NOT NULL, body bytea NOT NULL)`,
        )
        .catch(() => {})
      await pool.query(`CREATE INDEX IF NOT EXISTS jobs_queue ON ${schema}.jobs (queue, id)`).catch(() => {})
    },
    async enqueueOne(p) {
      await pool!.query({
        name: 'raw_insert',
        text: `INSERT INTO ${schema}.jobs (queue, body) VALUES ($1, $2)`,
        values: [queue, Buffer.from(JSON.stringify(p))],
      })
    },
    async enqueueBulk(ps) {
      await pool!.query(
        `INSERT INTO ${schema}.jobs (queue, body) SELECT $1, b FROM unnest($2::bytea[]) AS b`,
        [queue, ps.map((p) => Buffer.from(JSON.stringify(p)))],
      )
    },
    async startWorker(concurrency, onJob) {
      running = true
      const count = perQuery === 1 ? concurrency : Math.max(1, Math.ceil(concurrency / perQuery))
      const loop = async () => {
        while (running) {
          const res = await pool!.query<{ body: Buffer }>({
            name: `raw_take_${perQuery}`,
            text: `DELETE FROM ${schema}.jobs WHERE id IN (
                SELECT id FROM ${schema}.jobs WHERE queue = $1 ORDER BY id LIMIT ${perQuery} FOR UPDATE SKIP LOCKED)
              RETURNING body`,
            values: [queue],
          })
          for (const row of res.rows) onJob(JSON.parse(row.body.toString()) as BenchPayload)
          if (res.rows.length === 0) await sleep(1)
        }
      }
      loops = Array.from({ length: count }, loop)
    },
    async stopWorker() {
      running = false
      await Promise.all(loops)
    },
    async close() {
      await pool!.query(`DELETE FROM ${schema}.jobs WHERE queue = $1`, [queue])
      await pool!.end()
    },
  }
}

/** Empties the bench schema's result tables between runs (only the bench uses this schema). */
async function dropResults(): Promise<void> {
  const client = new pg.Client({ connectionString: DATABASE_URL })
  await client.connect()
  try {
    await client.query(
      'TRUNCATE bench_errand.results, bench_errand.groups, bench_errand.group_members, bench_errand.kv',
    )
  } finally {
    await client.end()
  }
}

/** Every PostgreSQL contender, in one run. */
export const contenders: ContenderSet = () => {
  const url = withSchema('bench_errand')
  return [
    errandContender({
      name: 'errand postgres',
      broker: () => new PostgresBroker({ url, logger: silentLogger }),
    }),
    errandContender({
      name: 'errand postgres + results',
      broker: () => new PostgresBroker({ url, logger: silentLogger }),
      backend: () => new PostgresResultBackend({ url, logger: silentLogger }),
      cleanup: dropResults,
    }),
    errandBroker(),
    pgBoss(),
    graphileWorker(false),
    graphileWorker(true),
    raw(1),
    raw(50),
  ]
}

interface TableSize {
  table: number
  indexes: number
}

async function jobsTableSize(client: pg.Client): Promise<TableSize> {
  const res = await client.query<{ table: string; indexes: string }>(
    `SELECT pg_table_size('bench_errand.jobs')::text AS table, pg_indexes_size('bench_errand.jobs')::text AS indexes`,
  )
  return { table: Number(res.rows[0]!.table), indexes: Number(res.rows[0]!.indexes) }
}

const mib = (bytes: number): string => `${(bytes / 1048576).toFixed(1)} MiB`

/** Fill `n` jobs, drain them at concurrency 50 through the Errand app; jobs/s of the drain. */
async function drainRate(
  n: number,
  onProgress?: (done: number, seconds: number) => void,
  afterFill?: () => Promise<void>,
): Promise<number> {
  const c = errandContender({
    name: 'errand postgres',
    broker: () => new PostgresBroker({ url: withSchema('bench_errand'), logger: silentLogger }),
  })
  const queue = `bench-growth-${process.pid}-${n}`
  await c.open(queue)
  try {
    const data = 'x'.repeat(100)
    for (let i = 0; i < n; i += 1000) {
      await c.enqueueBulk(
        Array.from({ length: Math.min(1000, n - i) }, (_, j) => ({ n: i + j, sentAt: 0, data })),
      )
    }
    await afterFill?.()
    let done = 0
    let resolve!: () => void
    const all = new Promise<void>((r) => {
      resolve = r
    })
    const start = performance.now()
    await c.startWorker(50, () => {
      done++
      if (onProgress && done % 100_000 === 0) onProgress(done, (performance.now() - start) / 1000)
      if (done === n) resolve()
    })
    await all
    const seconds = (performance.now() - start) / 1000
    await c.stopWorker()
    return n / seconds
  } finally {
    await c.close()
  }
}

/**
 * The growth check: drain rate at a 20,000-job backlog, then at a 1,000,000-job backlog, with
 * the jobs table's heap and index sizes at the start (after `maintain()`), at the peak, after
 * draining and a VACUUM (`maintain({ reindex: false })`), and after `maintain()`. Writes
 * bench/results/postgres-growth-<time>.json.
 */
export async function growth(big = 1_000_000, small = 20_000): Promise<void> {
  const client = new pg.Client({ connectionString: DATABASE_URL })
  await client.connect()
  try {
    // Start from a compact table (earlier runs may have left large indexes behind).
    const b = new PostgresBroker({ url: withSchema('bench_errand'), logger: silentLogger })
    await b.connect()
    await b.maintain()
    await b.close()
    const before = await jobsTableSize(client)
    console.error(`start: table ${mib(before.table)}, indexes ${mib(before.indexes)}`)
    const smallRate = await drainRate(small)
    console.error(`drain of ${small}: ${Math.round(smallRate)} jobs/s`)
    let peak: TableSize | undefined
    const bigRate = await drainRate(
      big,
      (done, seconds) => {
        console.error(
          `  ${done} drained after ${seconds.toFixed(1)} s (${Math.round(done / seconds)} jobs/s)`,
        )
      },
      async () => {
        peak = await jobsTableSize(client)
        console.error(`backlog of ${big}: table ${mib(peak.table)}, indexes ${mib(peak.indexes)}`)
      },
    )
    console.error(
      `drain of ${big}: ${Math.round(bigRate)} jobs/s (${((bigRate / smallRate) * 100).toFixed(0)}% of the ${small} rate)`,
    )
    // The broker VACUUMs as it goes (every 20,000 deletes); wait for its last pass, then VACUUM
    // once more: the heap is empty and truncated, B-tree files keep their high-water mark.
    const m = new PostgresBroker({ url: withSchema('bench_errand'), logger: silentLogger })
    await m.connect()
    const { after } = await m.maintain({ reindex: false })
    console.error(`after draining and VACUUM: table ${mib(after.table)}, indexes ${mib(after.indexes)}`)
    // maintain(): REINDEX CONCURRENTLY of indexes far larger than their rows need.
    const { after: maintained, reindexed } = await m.maintain()
    await m.close()
    console.error(
      `after maintain(): table ${mib(maintained.table)}, indexes ${mib(maintained.indexes)} (rebuilt ${reindexed.join(', ') || 'none'})`,
    )
    const out = `results/postgres-growth-${new Date().toISOString().replace(/[:.]/g, '-')}.json`
    await writeFile(
      new URL(`../../${out}`, import.meta.url),
      JSON.stringify(
        {
          big,
          small,
          smallRate,
          bigRate,
          before,
          peak,
          after,
          maintained,
          reindexed,
          at: new Date().toISOString(),
        },
        null,
        2,
      ),
    )
    console.error(`written to bench/${out}`)
  } finally {
    await client.end()
  }
}

if (
  process.argv[1] !== undefined &&
  import.meta.url === pathToFileURL(process.argv[1]).href &&
  process.argv[2] === 'growth'
) {
  await growth(Number(process.argv[3] ?? 1_000_000), Number(process.argv[4] ?? 20_000))
  process.exit(0)
}
