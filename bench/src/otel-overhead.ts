/**
 * What `@errand/otel` costs a drain: concurrency 50 on the memory store, no-op handler, 100-byte
 * payload, three variants in fresh processes, alternating (the order rotates each round):
 *
 * - `none`: no instrumentation (core's hook costs one `length === 0` check);
 * - `api`: `errandOtel()` installed, no SDK registered (every OpenTelemetry call is the API's no-op);
 * - `sdk`: the SDK registered globally as an application would: tracer provider with a batch span
 *   processor into an in-memory exporter, AsyncLocalStorage context manager, W3C propagator, meter
 *   provider with a periodic reader into an in-memory exporter, queue gauges.
 *
 *   cd bench && node --import tsx --conditions=source src/otel-overhead.ts [--runs 5] [--jobs 20000]
 *
 * Each child process warms up on a small drain, then times one drain of `--jobs` messages (filled
 * first, then a worker started), and prints its rate. The parent reports medians with min–max and
 * the ratios to `none`, and writes bench/results/otel-overhead-<time>.json.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { createApp, defineTask, type Instrumentation, MemoryBroker, silentLogger } from '@errand/core'
import { errandOtel } from '@errand/otel'
import { context, metrics, propagation, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter } from '@opentelemetry/sdk-trace-base'
import { z } from 'zod'
import { median } from './stats.js'

const VARIANTS = ['none', 'api', 'sdk'] as const
/** Extra variants for a breakdown (`--child <name>` by hand): the SDK without its context manager, traces only, metrics only, the context manager only. */
type Main = (typeof VARIANTS)[number]
type Variant = Main | 'sdk-noctx' | 'sdk-traces' | 'sdk-metrics' | 'ctx-only'

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}

interface Drain {
  readonly perSecond: number
  /** CPU time (user + system) of this process per job while draining, in µs. */
  readonly cpuMicros: number
}

/** One drain in this process. */
async function drainOnce(
  instrumentation: Instrumentation[],
  jobs: number,
  name: string,
  flush: () => Promise<void>,
): Promise<Drain> {
  let done = 0
  let finished: () => void = () => {}
  const all = new Promise<void>((resolve) => {
    finished = resolve
  })
  const queue = `otel-bench-${name}`
  const noop = defineTask({
    name: 'bench.noop',
    queue,
    input: z.object({ n: z.number(), data: z.string() }),
    handler: (p) => {
      if (++done === jobs) finished()
      return p.n
    },
  })
  const app = createApp({
    broker: new MemoryBroker({ name }),
    tasks: [noop],
    logger: silentLogger,
    instrumentation,
  })
  const data = 'x'.repeat(100)
  for (let i = 0; i < jobs; i += 1000) {
    await app.sendMany(Array.from({ length: Math.min(1000, jobs - i) }, (_, k) => noop.s({ n: i + k, data })))
  }
  // The fill's producer spans are exported now, not inside the timed drain.
  await flush()
  const start = performance.now()
  const cpu = process.cpuUsage()
  await app.worker({ concurrency: 50, queues: [queue], trackStarted: false }).start()
  await all
  const seconds = (performance.now() - start) / 1000
  const used = process.cpuUsage(cpu)
  await app.close()
  return { perSecond: jobs / seconds, cpuMicros: (used.user + used.system) / jobs }
}

let flush = async (): Promise<void> => {}

function instrumentationFor(variant: Variant): Instrumentation[] {
  if (variant === 'none') return []
  if (variant === 'api') return [errandOtel()]
  if (variant === 'ctx-only') {
    // The AsyncLocalStorage context manager alone (what every traced Node 20 app registers).
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
    return [errandOtel()]
  }
  const traces = variant !== 'sdk-metrics'
  const withMetrics = variant !== 'sdk-traces'
  const spans = new InMemorySpanExporter()
  const tracerProvider = new BasicTracerProvider({
    spanProcessors: [
      new BatchSpanProcessor(spans, {
        maxQueueSize: 200_000,
        maxExportBatchSize: 4096,
        scheduledDelayMillis: 200,
      }),
    ],
  })
  if (traces) trace.setGlobalTracerProvider(tracerProvider)
  flush = () => tracerProvider.forceFlush()
  if (variant !== 'sdk-noctx') context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  propagation.setGlobalPropagator(new W3CTraceContextPropagator())
  const meterProvider = new MeterProvider({
    readers: [
      new PeriodicExportingMetricReader({
        exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
        exportIntervalMillis: 1000,
      }),
    ],
  })
  if (withMetrics) metrics.setGlobalMeterProvider(meterProvider)
  // Keep the in-memory exporter from growing across the run's many spans.
  setInterval(() => spans.reset(), 1000).unref()
  return [errandOtel()]
}

async function child(variant: Variant, jobs: number): Promise<void> {
  const instrumentation = instrumentationFor(variant)
  await drainOnce(instrumentation, Math.min(jobs, 5000), 'warmup', flush)
  const result = await drainOnce(instrumentation, jobs, 'measured', flush)
  process.stdout.write(`${JSON.stringify({ variant, ...result })}\n`)
  process.exit(0)
}

function parent(runs: number, jobs: number): void {
  const self = fileURLToPath(import.meta.url)
  const rates: Record<Main, number[]> = { none: [], api: [], sdk: [] }
  const cpu: Record<Main, number[]> = { none: [], api: [], sdk: [] }
  for (let round = 0; round < runs; round++) {
    const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length] as Main)
    for (const variant of order) {
      const out = spawnSync(
        process.execPath,
        ['--import', 'tsx', '--conditions=source', self, '--child', variant, '--jobs', String(jobs)],
        { encoding: 'utf8', cwd: fileURLToPath(new URL('..', import.meta.url)) },
      )
      const line = out.stdout.trim().split('\n').pop() ?? ''
      if (out.status !== 0 || !line.startsWith('{')) throw new Error(`child ${variant} failed: ${out.stderr}`)
      const { perSecond, cpuMicros } = JSON.parse(line) as Drain
      rates[variant].push(perSecond)
      cpu[variant].push(cpuMicros)
      process.stderr.write(
        `round ${round + 1}/${runs} ${variant}: ${Math.round(perSecond)} jobs/s, ${cpuMicros.toFixed(1)} µs CPU/job\n`,
      )
    }
  }
  const base = median(rates.none)
  const baseCpu = median(cpu.none)
  const summary = VARIANTS.map((v) => ({
    variant: v,
    medianPerSecond: Math.round(median(rates[v])),
    min: Math.round(Math.min(...rates[v])),
    max: Math.round(Math.max(...rates[v])),
    // Cost against no instrumentation: 1 - median rate / median rate of `none`.
    overhead: v === 'none' ? 0 : 1 - median(rates[v]) / base,
    runs: rates[v].map(Math.round),
    // The steadier figure on a shared machine: CPU time per job, and its increase over `none`.
    medianCpuMicros: Number(median(cpu[v]).toFixed(1)),
    cpuMinMax: [Number(Math.min(...cpu[v]).toFixed(1)), Number(Math.max(...cpu[v]).toFixed(1))],
    cpuOverhead: v === 'none' ? 0 : median(cpu[v]) / baseCpu - 1,
    cpuRuns: cpu[v].map((x) => Number(x.toFixed(1))),
  }))
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`
  console.log(
    '| variant | median jobs/s | min–max | throughput cost | median CPU µs/job | min–max | CPU cost |',
  )
  console.log('|---|---:|---:|---:|---:|---:|---:|')
  for (const s of summary) {
    const none = s.variant === 'none'
    console.log(
      `| ${s.variant} | ${s.medianPerSecond} | ${s.min}–${s.max} | ${none ? '–' : pct(s.overhead)} | ${s.medianCpuMicros} | ${s.cpuMinMax[0]}–${s.cpuMinMax[1]} | ${none ? '–' : pct(s.cpuOverhead)} |`,
    )
  }
  const dir = fileURLToPath(new URL('../results/', import.meta.url))
  mkdirSync(dir, { recursive: true })
  const file = `${dir}otel-overhead-${new Date().toISOString().replace(/[:.]/g, '-')}.json`
  writeFileSync(
    file,
    `${JSON.stringify({ workload: 'drain-c50 memory', jobs, runs, node: process.version, summary }, null, 2)}\n`,
  )
  console.log(`\nwritten ${file}`)
}

const childAt = process.argv.indexOf('--child')
if (childAt >= 0) await child(process.argv[childAt + 1] as Variant, arg('jobs', 20_000))
else parent(arg('runs', 5), arg('jobs', 20_000))
