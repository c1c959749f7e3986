/**
 * What flow control costs a drain on Redis (broker and backend, Errand's defaults: results and
 * events on), concurrency 50, 100-byte payload, no-op handler; variants in fresh processes,
 * alternating (the order rotates each round), medians of paired ratios to `none`:
 *
 * - `none`: no limits (the path every unlimited task takes);
 * - `rate-keyed`: a rate limit per key over 1,000 keys that never binds (1,000,000 per second);
 * - `slots-keyed`: a concurrency limit per key over 1,000 keys that never binds (max 1,000).
 *
 *   cd bench && node --import tsx --conditions=source src/flow-overhead.ts [--runs 5] [--jobs 10000]
 *
 * Needs Redis on 127.0.0.1:6379 (db 9, keys under a fresh prefix per run). Writes
 * bench/results/flow-overhead-<time>.json.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { createApp, defineTask, silentLogger } from '@errand/core'
import '@errand/redis'
import { z } from 'zod'
import { median } from './stats.js'

const VARIANTS = ['none', 'rate-keyed', 'slots-keyed'] as const
type Variant = (typeof VARIANTS)[number]

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}

const KEYS = 1000
type Input = { n: number; data: string }
const keyOf = (i: Input): string => `k${i.n % KEYS}`

async function drainOnce(variant: Variant, jobs: number, tag: string): Promise<number> {
  let done = 0
  let finished: () => void = () => {}
  const all = new Promise<void>((resolve) => {
    finished = resolve
  })
  const prefix = `flowbench-${process.pid}-${tag}`
  const url = `redis://127.0.0.1:6379/9?keyPrefix=${prefix}`
  const queue = `flow-bench-${tag}`
  const noop = defineTask({
    name: 'bench.flow',
    queue,
    input: z.object({ n: z.number(), data: z.string() }),
    ...(variant === 'rate-keyed' && { rateLimit: { max: 1_000_000, perMs: 1000, key: keyOf } }),
    ...(variant === 'slots-keyed' && { concurrency: { max: 1000, key: keyOf } }),
    handler: (p) => {
      if (++done === jobs) finished()
      return p.n
    },
  })
  const app = createApp({ broker: url, backend: url, tasks: [noop], logger: silentLogger })
  const data = 'x'.repeat(100)
  for (let i = 0; i < jobs; i += 1000) {
    await app.sendMany(Array.from({ length: Math.min(1000, jobs - i) }, (_, k) => noop.s({ n: i + k, data })))
  }
  const start = performance.now()
  await app.worker({ concurrency: 50, queues: [queue] }).start()
  await all
  const seconds = (performance.now() - start) / 1000
  await app.close()
  return jobs / seconds
}

async function child(variant: Variant, jobs: number): Promise<void> {
  await drainOnce(variant, Math.min(jobs, 2000), 'warmup')
  const perSecond = await drainOnce(variant, jobs, 'measured')
  process.stdout.write(`${JSON.stringify({ variant, perSecond })}\n`)
  process.exit(0)
}

function parent(runs: number, jobs: number): void {
  const self = fileURLToPath(import.meta.url)
  const rates: Record<Variant, number[]> = { none: [], 'rate-keyed': [], 'slots-keyed': [] }
  for (let round = 0; round < runs; round++) {
    const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length] as Variant)
    for (const variant of order) {
      const out = spawnSync(
        process.execPath,
        ['--import', 'tsx', '--conditions=source', self, '--child', variant, '--jobs', String(jobs)],
        { encoding: 'utf8', cwd: fileURLToPath(new URL('..', import.meta.url)) },
      )
      const line = out.stdout.trim().split('\n').pop() ?? ''
      if (out.status !== 0 || !line.startsWith('{')) throw new Error(`child ${variant} failed: ${out.stderr}`)
      const { perSecond } = JSON.parse(line) as { perSecond: number }
      rates[variant].push(perSecond)
      process.stderr.write(`round ${round + 1}/${runs} ${variant}: ${Math.round(perSecond)} jobs/s\n`)
    }
  }
  // Paired by round: each limited run against the unlimited run of the same round.
  const ratio = (v: Variant) => median(rates[v].map((r, i) => r / (rates.none[i] as number)))
  const summary = VARIANTS.map((v) => ({
    variant: v,
    medianPerSecond: Math.round(median(rates[v])),
    min: Math.round(Math.min(...rates[v])),
    max: Math.round(Math.max(...rates[v])),
    medianRatioToNone: Number(ratio(v).toFixed(3)),
    runs: rates[v].map(Math.round),
  }))
  console.log('| variant | median jobs/s | min–max | median paired ratio to none |')
  console.log('|---|---:|---:|---:|')
  for (const s of summary) {
    console.log(`| ${s.variant} | ${s.medianPerSecond} | ${s.min}–${s.max} | ${s.medianRatioToNone} |`)
  }
  const dir = fileURLToPath(new URL('../results/', import.meta.url))
  mkdirSync(dir, { recursive: true })
  const file = `${dir}flow-overhead-${new Date().toISOString().replace(/[:.]/g, '-')}.json`
  writeFileSync(
    file,
    `${JSON.stringify({ store: 'redis', concurrency: 50, keys: KEYS, jobs, runs, node: process.version, summary }, null, 2)}\n`,
  )
  console.log(`written ${file}`)
}

const childAt = process.argv.indexOf('--child')
if (childAt >= 0) await child(process.argv[childAt + 1] as Variant, arg('jobs', 10_000))
else parent(arg('runs', 5), arg('jobs', 10_000))
