/**
 * Generates bench/RESULTS.md and bench/results/charts/*.svg from canonical run files.
 *
 *   pnpm bench:report                       # the newest canonical-<set>-*.json of each set
 *                                           # (a set is a store, or e.g. redis+aof: see --out)
 *   pnpm bench:report -- results/a.json results/b.json
 *
 * Medians and min–max are over the valid runs only. A run is invalid when its verification
 * failed (a job missing or handled twice, jobs left in the store, a timeout, an error) or when a
 * library beat the fastest raw floor of its group in the same round (a floor that is beaten is
 * not a floor: the run measured something else). Invalid runs are listed, never dropped silently.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { median } from '../stats.js'
import { type Bar, barChart } from './svg.js'
import type { ContenderMeta, RunResult } from './types.js'

const here = dirname(fileURLToPath(import.meta.url))
const benchDir = join(here, '..', '..')
const resultsDir = join(benchDir, 'results')

interface Row extends RunResult {
  round: number
  position: number
  loadavg1: number
  wallSeconds: number
}

interface RunFile {
  kind: string
  store: string
  command: string
  startedAt: string
  finishedAt: string
  machine: { cpus: number; model?: string; loadavgAtStart: number[] }
  versions: Record<string, string>
  sizes: { drain: number; enqueue: number; latency: number; perWorkload?: Record<string, number> }
  payloadBytes: number
  runs: number
  workloads: string[]
  contenders: ContenderMeta[]
  results: Row[]
}

const args = process.argv.slice(2).filter((a) => a !== '--')
async function inputFiles(): Promise<string[]> {
  if (args.length > 0) return args.map((a) => (a.startsWith('/') ? a : join(benchDir, a)))
  const names = (await readdir(resultsDir)).filter((n) => /^canonical-.*\.json$/.test(n)).sort()
  const latest = new Map<string, string>()
  for (const n of names) latest.set(n.split('-')[1]!, n)
  return [...latest.values()].map((n) => join(resultsDir, n))
}

const fmt = (v: number | undefined): string =>
  v === undefined || Number.isNaN(v)
    ? '–'
    : v >= 100
      ? Math.round(v).toLocaleString('en-US')
      : v >= 10
        ? v.toFixed(1)
        : v.toFixed(2)
const range = (xs: readonly number[]): string =>
  xs.length === 0 ? '–' : `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}`

const CLASS_LABEL: Record<string, string> = {
  'no-results': 'no results kept',
  results: 'results kept',
  floor: 'raw floor',
  ceiling: 'ceiling (memory)',
}
const CLASS_COLOR: Record<string, string> = {
  'no-results': '#4c78a8',
  results: '#f58518',
  floor: '#9d9d9d',
  ceiling: '#54a24b',
}
const CLASS_ORDER = ['no-results', 'results', 'floor', 'ceiling']

/** What each store's durability means, and where Errand's defaults come from. */
const STORE_NOTES: Record<string, string[]> = {
  postgres: [
    '**Durability.** The peers (graphile-worker, pg-boss) and the `raw-sync` floor commit everything with the',
    "server's `synchronous_commit=on` (fsync on): each commit waits for the WAL flush. Errand's default does not",
    'for leases and settles: `PostgresBroker` option `durableSettle` (default `false`,',
    '`packages/postgres/src/postgres-broker.ts`) makes `BrokerSql` (`broker-sql.ts`, `asyncSettle`) and the',
    "`lease_jobs` SQL function (`migrations.ts`, `p_async`) run `set_config('synchronous_commit', 'off', true)`",
    'inside the fetch/ack/nack/extend/dead-letter statements; publishes always wait for the flush. Its README',
    '(Durability) says a crash of the server (not a clean restart) "can forget the last few hundred ms of them, and',
    'those jobs are delivered again (never lost)". So Errand is shown twice: `errand` / `errand+results` at the',
    'default (floor: `raw-async`, the same commit mode) and `errand-durable` / `errand+results-durable` with',
    '`durableSettle: true` (floor: `raw-sync`), which is the like-for-like comparison with the peers. The result',
    'backend commits STARTED/RETRY records asynchronously and final records with the flush; task events (on by',
    'default with a backend) are inserted with the flush.',
  ],
  redis: [
    '**Durability.** The shared Redis runs with `--appendonly no --save ""`: nothing reaches disk, for every',
    'contender alike (a server crash loses every queued job and result). An AOF `appendfsync everysec` variant',
    '(`BENCH_REDIS_AOF_URL` pointing at a second redis-server) is supported by the harness but was not run here.',
  ],
  amqp: [
    '**Durability.** Errand and the raw floor both use durable classic queues, persistent messages and publisher',
    'confirms (a publish resolves on the confirm), manual acks, prefetch = concurrency. Results (errand+redis-results)',
    'go to the shared Redis, which keeps nothing on disk.',
  ],
  memory: [
    '**Durability.** None: the in-process store, shown as the ceiling of what the Errand core can do.',
  ],
}

/** When each set ran and what none of them did yet; edit with the next run. */
const CAVEATS = [
  '**Caveats.** The sets were run at different times, so compare ratios within a set, never figures',
  'across sets. `redis`: 2026-12-02 11:50–12:24 on a quiet machine (1-minute load about 1.5–3, the',
  "bench itself), after the day's core work; its `drain-c50-p2` / `-p4` rows were timed by the first",
  'multi-process clock (10 ms progress reports): fine for the libraries (2–3% at their rates), meaningless',
  'for the raw BLMPOP floor (a 40,000-job drain inside one report). `memory`: 07:27 and `sqlite`: 07:58',
  "the same day. `postgres` and `amqp`: 00:12–00:59, before the day's core work, while other engineers'",
  'tests loaded the 2 cores (load 10–35; the Redis and PostgreSQL sets of that night ran at the same',
  'time). Not run yet: the new workloads (handler time, failure path, several worker processes, open',
  'loop) outside Redis; drain at c = 10 and 200 outside Redis; Redis with AOF (`BENCH_REDIS_AOF_URL`);',
  'payloads of 1 KiB / 16 KiB (`--payload`); the peers on Node 24.',
]

const isLatency = (w: string) => w === 'latency' || w.startsWith('open-')
/** The figure compared: jobs/s (higher is better) or p50 ms (lower is better). */
const metric = (r: Row, w: string): number | undefined => (isLatency(w) ? r.p50Ms : r.perSecond)
const better = (a: number, b: number, w: string) => (isLatency(w) ? a < b : a > b)

interface Judged extends Row {
  valid: boolean
  why?: string
}

function judge(file: RunFile): Judged[] {
  const meta = new Map(file.contenders.map((m) => [m.name, m]))
  return file.results.map((r) => {
    if (!r.ok) return { ...r, valid: false, why: r.error ?? 'failed' }
    const m = meta.get(r.contender)
    const v = metric(r, r.workload)
    // Not with handlers that take time: the raw loops take a batch and wait for all of it, a
    // library that prefetches keeps every slot busy, and the bound is c ÷ handler time.
    if (m && m.class !== 'floor' && m.floor && v !== undefined && !/-h\d+$/.test(r.workload)) {
      const floors = file.results.filter(
        (f) =>
          f.workload === r.workload &&
          f.round === r.round &&
          f.ok &&
          meta.get(f.contender)?.class === 'floor' &&
          meta.get(f.contender)?.floor === m.floor,
      )
      const fv = floors.map((f) => metric(f, f.workload)).filter((x): x is number => x !== undefined)
      if (fv.length > 0) {
        const best = isLatency(r.workload) ? Math.min(...fv) : Math.max(...fv)
        if (better(v, best, r.workload))
          return {
            ...r,
            valid: false,
            why: `beat its floor (${fmt(v)} vs best floor ${fmt(best)} in round ${r.round})`,
          }
      }
    }
    return { ...r, valid: true }
  })
}

const WORKLOAD_TEXT: Record<string, string> = {
  'enqueue-1': 'enqueue one at a time (1 in flight), jobs/s',
  'enqueue-64': 'enqueue one job per call, 64 calls in flight, jobs/s',
  'enqueue-bulk': 'bulk enqueue (batches of 1,000), jobs/s',
  latency:
    'latency, send → handler start, one job at a time (2 ms gap, worker at concurrency 1; not an open-loop producer), ms',
}
const workloadText = (w: string, file: RunFile): string => {
  const n = (file.sizes.perWorkload?.[w] ?? file.sizes.drain).toLocaleString('en-US')
  const m = /^drain-c(\d+)(?:-h(\d+))?$/.exec(w)
  if (m)
    return `drain ${n} jobs at concurrency ${m[1]}${m[2] ? `, each handler taking ${m[2]} ms (at most ${Math.round((Number(m[1]) * 1000) / Number(m[2])).toLocaleString('en-US')} jobs/s; the raw loops are shown for reference, not as floors: they wait for a whole batch)` : ''}, jobs/s`
  const p = /^drain-c(\d+)-p(\d+)$/.exec(w)
  if (p) return `drain ${n} jobs with ${p[2]} worker processes at concurrency ${p[1]} each, jobs/s`
  const f = /^fail-c(\d+)$/.exec(w)
  if (f)
    return `failure path: drain ${n} jobs at concurrency ${f[1]}, every 10th job throws on its first attempt and is retried once at once, jobs/s`
  const o = /^open-r(\d+)-c(\d+)$/.exec(w)
  if (o)
    return `open loop: ${n} jobs sent one per call at ${Number(o[1]).toLocaleString('en-US')} jobs/s on a fixed schedule, worker at concurrency ${o[2]}; latency from each job's scheduled send to its handler, ms`
  return `${WORKLOAD_TEXT[w] ?? w}${file.sizes.perWorkload ? ` (${n} jobs)` : ''}`
}

async function main(): Promise<void> {
  const files = await inputFiles()
  const chartsDir = join(resultsDir, 'charts')
  await mkdir(chartsDir, { recursive: true })
  const out: string[] = []
  out.push(
    '# Errand benchmark results (canonical harness)',
    '',
    '<!-- Generated by bench/src/canonical/report.ts from the JSON files named below: do not edit by hand. -->',
    '',
    'How these numbers are made (bench/src/canonical, `pnpm bench:canonical`):',
    '',
    '- every run is a fresh `node` process (run-one.ts) that prints one JSON line; contenders alternate',
    '  (A B C…, then …C B A, the first order alternating per workload); each contender runs every',
    '  workload the given number of times; figures are **medians with min–max** over the valid runs;',
    '- set-up and worker start-up are outside the clock for everyone: a drain fills N + W jobs, starts the',
    '  worker, and times from the W-th handled job (W = max(100, 4·c) warm-up jobs) to the last; enqueue',
    '  runs send 50 (bulk: 100) warm-up jobs first;',
    '- every run is verified: each job handled exactly once by its number, the store empty afterwards',
    '  (enqueue runs: the store holds exactly the jobs sent, then they are drained and checked). A run that',
    '  fails is **invalid** and listed; so is a library run faster than the fastest raw floor of its group',
    '  in the same round (on this loaded machine a single floor run is itself noisy, so this rule also',
    '  catches noise: the last column gives the median of all runs, invalid ones included, for comparison);',
    '- each run creates its own schema / key prefix / queue and drops it at the end (no bloat carried over;',
    '  autovacuum is off on this PostgreSQL, so the catalogs are VACUUMed after each workload);',
    '- payload: `{ n, sentAt, data }` with `data` of 100 bytes; handlers do nothing (0 ms);',
    '- **paired ratio** = Errand ÷ peer within one round (the two runs closest in time), median and',
    '  min–max over rounds where both runs were valid; for throughput > 1 means Errand is faster, for',
    '  latency (p50) < 1 means Errand is faster.',
    '',
    ...CAVEATS,
    '',
  )
  for (const path of files) {
    const file = JSON.parse(await readFile(path, 'utf8')) as RunFile
    const judged = judge(file)
    const metas = [...file.contenders].sort(
      (a, b) => CLASS_ORDER.indexOf(a.class) - CLASS_ORDER.indexOf(b.class),
    )
    const rel = path.slice(benchDir.length + 1)
    // The set's name: the store, or what the file name says after `canonical-` (`redis+aof` for a
    // set of the AOF variants run with `--out canonical-redis+aof-<time>.json`).
    const label = /canonical-([^-]+)-/.exec(rel)?.[1] ?? file.store
    out.push(
      `## ${label}`,
      '',
      `Command: \`${file.command}\` (from the repository root), ${file.startedAt} → ${file.finishedAt}.`,
      `Data: \`bench/${rel}\`. Machine: ${file.machine.cpus} × ${file.machine.model ?? '?'}, **shared with other`,
      `engineers' tests**: load average ${file.machine.loadavgAtStart.map((l) => l.toFixed(1)).join(' / ')} at the start`,
      `(each run's 1-minute load is in the JSON). Absolute figures are depressed and noisy; compare ratios within this run.`,
      '',
      `Versions: ${Object.entries(file.versions)
        .map(([k, v]) => `${k} ${v}`)
        .join('; ')}.`,
      '',
      ...(STORE_NOTES[file.store] ?? []),
      '',
      '| contender | class | library | durability | settings |',
      '|---|---|---|---|---|',
      ...metas.map(
        (m) => `| ${m.name} | ${CLASS_LABEL[m.class]} | ${m.library} | ${m.durability} | ${m.settings} |`,
      ),
      '',
    )
    const invalid: string[] = []
    for (const w of file.workloads) {
      const rows = judged.filter((r) => r.workload === w)
      if (rows.length === 0) continue
      const lat = isLatency(w)
      out.push(`### ${label}: ${workloadText(w, file)}`, '')
      const chart = `${label}-${w}.svg`
      out.push(`![${label} ${w}](results/charts/${chart})`, '')
      // Open loop: also what each kept up with (a store that falls behind handles fewer per second
      // than were sent, and its latency grows with the run).
      const open = w.startsWith('open-')
      if (lat)
        out.push(
          `| contender | class | durability | p50 ms median (min–max) | p99 ms median (min–max) | p99.9 ms median (min–max) | valid / runs |${open ? ' handled jobs/s median (min–max) |' : ''}`,
          `|---|---|---|---:|---:|---:|---:|${open ? '---:|' : ''}`,
        )
      else
        out.push(
          '| contender | class | durability | jobs/s median | min–max | valid / runs | median of all runs (incl. invalid) |',
          '|---|---|---|---:|---:|---:|---:|',
        )
      const bars: Bar[] = []
      for (const m of metas) {
        const mine = rows.filter((r) => r.contender === m.name)
        if (mine.length === 0) continue
        const ok = mine.filter((r) => r.valid)
        const vals = ok.map((r) => metric(r, w)).filter((x): x is number => x !== undefined)
        const flag = ok.length < mine.length ? ` ⚠ ${mine.length - ok.length} invalid` : ''
        if (lat) {
          const p = (k: 'p50Ms' | 'p99Ms' | 'p999Ms') =>
            ok.map((r) => r[k]).filter((x): x is number => x !== undefined)
          const cell = (xs: number[]) => (xs.length ? `${fmt(median(xs))} (${range(xs)})` : '–')
          const rates = ok.map((r) => r.perSecond).filter((x): x is number => x !== undefined)
          out.push(
            `| ${m.name} | ${CLASS_LABEL[m.class]} | ${m.durabilityShort} | ${cell(p('p50Ms'))} | ${cell(p('p99Ms'))} | ${cell(p('p999Ms'))} | ${ok.length} / ${mine.length}${flag} |${open ? ` ${cell(rates)} |` : ''}`,
          )
        } else {
          out.push(
            `| ${m.name} | ${CLASS_LABEL[m.class]} | ${m.durabilityShort} | ${vals.length ? fmt(median(vals)) : '–'} | ${range(vals)} | ${ok.length} / ${mine.length}${flag} | ${fmt(median(mine.map((r) => metric(r, w)).filter((x): x is number => x !== undefined)))} |`,
          )
        }
        bars.push({
          label: `${m.name}`,
          value: vals.length ? median(vals) : undefined,
          ...(vals.length && { min: Math.min(...vals), max: Math.max(...vals) }),
          color: CLASS_COLOR[m.class]!,
          ...(ok.length < mine.length && {
            note: vals.length ? `(${mine.length - ok.length} invalid)` : 'no valid run',
          }),
        })
        for (const r of mine.filter((x) => !x.valid))
          invalid.push(
            `| ${w} | ${m.name} | ${r.round} | ${r.why?.replace(/\|/g, '/').replace(/\n/g, ' ').slice(0, 300)} |`,
          )
      }
      await writeFile(
        join(chartsDir, chart),
        barChart(
          `${label}: ${workloadText(w, file)}`,
          lat ? 'p50 ms, lower is better' : 'jobs/s, higher is better',
          bars,
          CLASS_ORDER.filter((c) => metas.some((m) => m.class === c)).map((c) => [
            CLASS_LABEL[c]!,
            CLASS_COLOR[c]!,
          ]),
        ),
      )
      // Paired ratios: each Errand contender against each other contender of the store.
      const errands = metas.filter((m) => m.errand)
      const others = metas.filter((m) => !m.errand)
      const pairs: string[] = []
      for (const e of errands) {
        for (const p of others) {
          const ratios: number[] = []
          for (let round = 0; round < file.runs; round++) {
            const a = rows.find((r) => r.contender === e.name && r.round === round && r.valid)
            const b = rows.find((r) => r.contender === p.name && r.round === round && r.valid)
            const av = a && metric(a, w)
            const bv = b && metric(b, w)
            if (av !== undefined && bv !== undefined && bv > 0) ratios.push(av / bv)
          }
          const same = e.class === p.class ? ' (same class)' : p.class === 'floor' ? ' (floor)' : ''
          pairs.push(
            `| ${e.name} ÷ ${p.name}${same} | ${ratios.length ? `${median(ratios).toFixed(2)}×` : '–'} | ${ratios.length ? `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}` : '–'} | ${ratios.length} |`,
          )
        }
      }
      if (pairs.length > 0)
        out.push(
          '',
          `Paired ratios (${lat ? 'p50, < 1 = Errand faster' : 'jobs/s, > 1 = Errand faster'}):`,
          '',
          '| pair | median | min–max | pairs |',
          '|---|---:|---:|---:|',
          ...pairs,
        )
      out.push('')
    }
    out.push(`### ${label}: invalid runs`, '')
    if (invalid.length === 0)
      out.push('None: every run passed verification and no library beat its floor.', '')
    else out.push('| workload | contender | round | why |', '|---|---|---:|---|', ...invalid, '')
  }
  await writeFile(join(benchDir, 'RESULTS.md'), `${out.join('\n')}\n`)
  console.error(`wrote bench/RESULTS.md and bench/results/charts/ from ${files.length} file(s)`)
}

await main()
