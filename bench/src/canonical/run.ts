/**
 * The canonical benchmark: every run in a fresh process (run-one.ts), contenders alternating,
 * at least 5 runs per contender and workload, every drain verified. Writes
 * bench/results/canonical-<store>-<time>.json; `report.ts` turns those files into RESULTS.md.
 *
 *   pnpm bench:canonical -- --store redis
 *   pnpm bench:canonical -- --store postgres --runs 5 --workloads drain-c1,drain-c50,enqueue-1
 *
 * Flags: --store (memory | redis | postgres | amqp | sqlite), --runs (5), --workloads (comma list
 * of drain-c<k>, drain-c<k>-h<handler ms>, fail-c<k>, open-r<jobs/s>-c<k>, enqueue-<in flight>,
 * enqueue-bulk, latency; see run-one.ts), --only (comma list of contender
 * names), --n (drain size, 20 000; 100 000 with --big), --enqueue-n (5 000), --latency-n (1 000),
 * --payload (bytes, 100), --timeout (s per run, 600), --size (per-workload sizes,
 * `drain-c1=2000,enqueue-1=1000`), --out (file name under bench/results/).
 */
import { spawn } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { type RunResult, type StoreModule, unsupported } from './types.js'

const here = dirname(fileURLToPath(import.meta.url))
const benchDir = join(here, '..', '..')

const DEFAULT_WORKLOADS = 'drain-c1,drain-c10,drain-c50,enqueue-1,enqueue-64,enqueue-bulk,latency'

const { values } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    store: { type: 'string', default: 'memory' },
    runs: { type: 'string', default: '5' },
    workloads: { type: 'string', default: DEFAULT_WORKLOADS },
    only: { type: 'string' },
    n: { type: 'string' },
    big: { type: 'boolean', default: false },
    'enqueue-n': { type: 'string', default: '5000' },
    'latency-n': { type: 'string', default: '1000' },
    payload: { type: 'string', default: '100' },
    timeout: { type: 'string', default: '600' },
    size: { type: 'string' },
    out: { type: 'string' },
  },
})

const storeName = values.store!
const runs = Math.max(1, Number(values.runs))
const drainN = Number(values.n ?? (values.big ? 100_000 : 20_000))
const workloads = values.workloads!.split(',').filter(Boolean)
const { store } = (await import(`./stores/${storeName}.js`)) as { store: StoreModule }
const only = values.only?.split(',').filter(Boolean)
const metas = store.metas.filter((m) => !only || only.includes(m.name))
if (metas.length === 0)
  throw new Error(`no contender left; known: ${store.metas.map((m) => m.name).join(', ')}`)

/** `--size drain-c1=2000,enqueue-1=1000`: per-workload sizes (when a slow store needs it). */
const sizeOverride = new Map(
  (values.size ?? '')
    .split(',')
    .filter(Boolean)
    .map((kv) => kv.split('=') as [string, string]),
)

function sizeOf(workload: string): number {
  const o = sizeOverride.get(workload)
  if (o !== undefined) return Number(o)
  if (workload.startsWith('drain-') || workload.startsWith('fail-')) return drainN
  if (workload === 'enqueue-bulk') return drainN
  if (workload === 'latency') return Number(values['latency-n'])
  return Number(values['enqueue-n'])
}

interface Row extends RunResult {
  round: number
  position: number
  loadavg1: number
  wallSeconds: number
}

function runOne(contender: string, workload: string): Promise<Row | RunResult> {
  const args = [
    '--import',
    'tsx',
    '--conditions=source',
    join(here, 'run-one.ts'),
    '--store',
    storeName,
    '--contender',
    contender,
    '--workload',
    workload,
    '--n',
    String(sizeOf(workload)),
    '--payload',
    values.payload!,
    '--timeout',
    values.timeout!,
  ]
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: benchDir, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
    })
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString()
    })
    child.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '))
      if (line) resolve(JSON.parse(line.slice(7)) as RunResult)
      else
        resolve({
          contender,
          workload,
          ok: false,
          error: `no result (exit ${code}): ${err.slice(-600)}`,
          jobs: sizeOf(workload),
          warmup: 0,
          pid: child.pid ?? 0,
        })
    })
  })
}

/** VACUUM the catalogs that dropping a schema per run churns (autovacuum is off here). */
async function vacuumCatalog(): Promise<void> {
  if (storeName !== 'postgres') return
  const { default: pg } = await import('pg')
  const client = new pg.Client({
    connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  })
  await client.connect()
  try {
    for (const t of [
      'pg_class',
      'pg_attribute',
      'pg_type',
      'pg_depend',
      'pg_index',
      'pg_proc',
      'pg_namespace',
    ])
      await client.query(`VACUUM pg_catalog.${t}`).catch(() => {})
  } finally {
    await client.end()
  }
}

const startedAt = new Date().toISOString()
const command = `pnpm bench:canonical -- ${process.argv
  .slice(2)
  .filter((a) => a !== '--')
  .join(' ')}`
const versions = { node: process.version, ...(await store.versions()) }
const results: Row[] = []
const file = values.out ?? `canonical-${storeName}-${startedAt.replace(/[:.]/g, '-').replace(/Z$/, '')}.json`
const save = async () => {
  await mkdir(join(benchDir, 'results'), { recursive: true })
  await writeFile(
    join(benchDir, 'results', file),
    `${JSON.stringify(
      {
        kind: 'errand-canonical-bench',
        store: storeName,
        command,
        startedAt,
        finishedAt: new Date().toISOString(),
        machine: { cpus: cpus().length, model: cpus()[0]?.model, loadavgAtStart: loadavg() },
        versions,
        sizes: {
          drain: drainN,
          enqueue: Number(values['enqueue-n']),
          latency: Number(values['latency-n']),
          perWorkload: Object.fromEntries(workloads.map((w) => [w, sizeOf(w)])),
        },
        payloadBytes: Number(values.payload),
        runs,
        workloads,
        contenders: metas,
        results,
      },
      null,
      2,
    )}\n`,
  )
}

for (const [wi, workload] of workloads.entries()) {
  const list = metas.filter((m) => !unsupported(m, workload)).map((m) => m.name)
  for (let round = 0; round < runs; round++) {
    // A B C, C B A, A B C…: each contender's neighbours alternate; the first order alternates per workload.
    const order = (round + wi) % 2 === 0 ? list : [...list].reverse()
    for (const [position, name] of order.entries()) {
      const t0 = performance.now()
      const load = loadavg()[0]
      const r = await runOne(name, workload)
      const row: Row = {
        ...r,
        round,
        position,
        loadavg1: (r as Row).loadavg1 ?? load,
        wallSeconds: (performance.now() - t0) / 1000,
      }
      results.push(row)
      const figure =
        r.perSecond !== undefined
          ? `${Math.round(r.perSecond)} jobs/s`
          : r.p50Ms !== undefined
            ? `p50 ${r.p50Ms.toFixed(2)} ms p99 ${r.p99Ms?.toFixed(2)} ms`
            : ''
      console.error(
        `${workload.padEnd(13)} r${round} ${name.padEnd(24)} ${figure.padEnd(30)} ${r.ok ? 'ok' : `INVALID ${r.error}`}  (load ${row.loadavg1.toFixed(1)}, ${row.wallSeconds.toFixed(1)} s)`,
      )
      await save()
    }
  }
  await vacuumCatalog()
}
await save()
console.error(`written to bench/results/${file}; make the report with pnpm bench:report`)
