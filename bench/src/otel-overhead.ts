/**
 * What `@errand/otel` costs a drain: concurrency 50 on the memory store, no-op handler, 100-byte
 * payload, five variants in fresh processes, alternating (the order rotates each round):
 *
 * - `none`: no instrumentation (core's hook costs one `length === 0` check);
 * - `api`: `errandOtel()` installed, no SDK registered (every OpenTelemetry call is the API's no-op);
 * - `ctx-only`: a reference, not Errand's cost: no instrumentation, the AsyncLocalStorage context
 *   manager registered and used once, as in any traced app. On Node 20 that turns on promise hooks
 *   for every promise of the process, a cost the `sdk` row includes and Errand cannot avoid
 *   (the consumer span must be the active context inside an async handler);
 * - `sdk`: the SDK registered globally as an application would: tracer provider with a
 *   `BatchSpanProcessor` at its defaults (what production uses: 512-span batches, 2048 queued,
 *   5 s timer) into an in-memory exporter that forgets each batch once exported (as a network
 *   exporter does; one that kept every span would measure the exporter's heap, not Errand),
 *   AsyncLocalStorage context manager, W3C propagator, meter provider with a periodic reader
 *   (every second) into an in-memory exporter, queue gauges (`otel.observeQueues(app)`).
 * - `sdk-floor`: a reference, not Errand's cost: the same SDK set-up, and instead of
 *   `@errand/otel` the least any instrumentation of an attempt does (`otel-floor.ts`: extract,
 *   one consumer span with the same attributes run as the handler's context, two histogram
 *   records). `sdk` minus `sdk-floor` is what Errand's instrumentation adds to the SDK's own cost.
 *
 *   cd bench && node --import tsx --conditions=source src/otel-overhead.ts [--runs 7] [--jobs 40000]
 *
 * Each child process warms up on a small drain, then times one drain of `--jobs` messages (filled
 * first, then a worker started; start-up, import and fill are outside the timing), and prints its
 * rate and CPU time per job (`process.cpuUsage`, so the SDK's export work during the drain counts).
 * A round runs every variant once, each in a fresh process, the order rotating from round to
 * round. The cost of a variant is the median over rounds of its ratio to the same round's `none`
 * (paired: a round's variants ran minutes apart at most, so a load swing hits both sides of a
 * ratio), with min–max. The parent prints the table and writes
 * bench/results/otel-overhead-<time>.json.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { createApp, defineTask, type Instrumentation, MemoryBroker, silentLogger } from '@errand/core'
import { type ErrandOtel, errandOtel } from '@errand/otel'
import { context, metrics, propagation, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics'
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  InMemorySpanExporter,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base'
import { z } from 'zod'
import { FloorInstrumentation } from './otel-floor.js'
import { median } from './stats.js'

const VARIANTS = ['none', 'api', 'ctx-only', 'sdk-floor', 'sdk'] as const
/** Extra variants for a breakdown (`--child <name>` by hand): the SDK without its context manager, traces only, metrics only. */
type Main = (typeof VARIANTS)[number]
type Variant = Main | 'sdk-noctx' | 'sdk-traces' | 'sdk-metrics'

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}

interface Drain {
  readonly perSecond: number
  /** CPU time (user + system) of this process per job while draining, in µs. */
  readonly cpuMicros: number
}

/**
 * The in-memory exporter, forgetting each batch once exported: a network exporter serialises a
 * batch and drops it, where the stock in-memory one keeps every span until `reset()` (at 15,000
 * spans a second that is tens of MB promoted to the old generation, whose collection is then
 * most of the measured cost). Counts what it saw, so a run can show that every attempt made a span.
 */
class ForgetfulSpanExporter extends InMemorySpanExporter {
  processSpans = 0
  override export(spans: ReadableSpan[], done: Parameters<InMemorySpanExporter['export']>[1]): void {
    for (const s of spans) if (s.name.startsWith('process ')) this.processSpans++
    super.export(spans, done)
    this.reset()
  }
}

let exporter: ForgetfulSpanExporter | undefined
let otelInstance: ErrandOtel | undefined

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
  const gauges = name === 'measured' ? otelInstance?.observeQueues(app) : undefined
  const data = 'x'.repeat(100)
  for (let i = 0; i < jobs; i += 1000) {
    await app.sendMany(Array.from({ length: Math.min(1000, jobs - i) }, (_, k) => noop.s({ n: i + k, data })))
  }
  // The fill's producer spans are exported now, not inside the timed drain.
  await flush()
  const profiler = name === 'measured' ? await startProfile() : undefined
  const start = performance.now()
  const cpu = process.cpuUsage()
  await app.worker({ concurrency: 50, queues: [queue], trackStarted: false }).start()
  await all
  const seconds = (performance.now() - start) / 1000
  const used = process.cpuUsage(cpu)
  await profiler?.()
  gauges?.close()
  await app.close()
  return { perSecond: jobs / seconds, cpuMicros: (used.user + used.system) / jobs }
}

/**
 * `--profile <file>` (with `--child`): a V8 CPU profile of the timed drain only, without the
 * start-up, warm-up and fill that `node --cpu-prof` would mix in. The profiler itself costs CPU:
 * never combine it with a measured run.
 */
async function startProfile(): Promise<(() => Promise<void>) | undefined> {
  const at = process.argv.indexOf('--profile')
  const file = at >= 0 ? process.argv[at + 1] : undefined
  if (!file) return undefined
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: 100 })
  await session.post('Profiler.start')
  return async () => {
    const { profile } = await session.post('Profiler.stop')
    writeFileSync(file, JSON.stringify(profile))
    session.disconnect()
  }
}

let flush = async (): Promise<void> => {}

function instrumentationFor(variant: Variant): Instrumentation[] {
  if (variant === 'none') return []
  if (variant === 'api') return [errandOtel()]
  if (variant === 'ctx-only') {
    // The AsyncLocalStorage context manager alone (what every traced Node 20 app registers), in
    // use once as any instrumented server's first request would: from then on Node 20 runs its
    // promise hooks on every promise of the process. No SDK, no Errand instrumentation.
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
    context.with(context.active(), () => {})
    return []
  }
  const traces = variant !== 'sdk-metrics'
  const withMetrics = variant !== 'sdk-traces'
  exporter = new ForgetfulSpanExporter()
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter)] })
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
  if (variant === 'sdk-floor') return [new FloorInstrumentation()]
  otelInstance = errandOtel()
  return [otelInstance]
}

async function child(variant: Variant, jobs: number): Promise<void> {
  const instrumentation = instrumentationFor(variant)
  await drainOnce(instrumentation, Math.min(jobs, 5000), 'warmup', flush)
  await flush()
  const before = exporter?.processSpans ?? 0
  const result = await drainOnce(instrumentation, jobs, 'measured', flush)
  await flush()
  // Process spans the measured drain exported, one per job when the SDK variant did all its work
  // (the batch processor drops spans past its queue: a drain that starved the export would look cheap).
  const spans = exporter ? exporter.processSpans - before : undefined
  process.stdout.write(`${JSON.stringify({ variant, ...result, spans })}\n`)
  process.exit(0)
}

function parent(runs: number, jobs: number): void {
  const self = fileURLToPath(import.meta.url)
  const rates = Object.fromEntries(VARIANTS.map((v) => [v, [] as number[]])) as Record<Main, number[]>
  const cpu = Object.fromEntries(VARIANTS.map((v) => [v, [] as number[]])) as Record<Main, number[]>
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
      const { perSecond, cpuMicros, spans } = JSON.parse(line) as Drain & { spans?: number }
      if (spans !== undefined && spans !== jobs)
        throw new Error(`${variant}: ${spans} process spans for ${jobs} jobs`)
      rates[variant].push(perSecond)
      cpu[variant].push(cpuMicros)
      process.stderr.write(
        `round ${round + 1}/${runs} ${variant}: ${Math.round(perSecond)} jobs/s, ${cpuMicros.toFixed(1)} µs CPU/job\n`,
      )
    }
  }
  // Paired: each round's ratio to that round's `none`, then the median over rounds.
  const paired = (xs: Record<Main, number[]>, v: Main) => xs[v].map((x, i) => x / (xs.none[i] as number))
  const round1 = (x: number) => Number(x.toFixed(1))
  const summary = VARIANTS.map((v) => {
    const rateRatios = paired(rates, v)
    const cpuRatios = paired(cpu, v)
    return {
      variant: v,
      medianPerSecond: Math.round(median(rates[v])),
      min: Math.round(Math.min(...rates[v])),
      max: Math.round(Math.max(...rates[v])),
      runs: rates[v].map(Math.round),
      medianCpuMicros: round1(median(cpu[v])),
      cpuMinMax: [round1(Math.min(...cpu[v])), round1(Math.max(...cpu[v]))],
      cpuRuns: cpu[v].map(round1),
      // Throughput cost: 1 − the median of the rounds' rate ratios to `none` (min–max over rounds).
      overhead: 1 - median(rateRatios),
      overheadMinMax: [1 - Math.max(...rateRatios), 1 - Math.min(...rateRatios)],
      // CPU cost: the median of the rounds' CPU-per-job ratios to `none`, minus 1 (min–max).
      cpuOverhead: median(cpuRatios) - 1,
      cpuOverheadMinMax: [Math.min(...cpuRatios) - 1, Math.max(...cpuRatios) - 1],
    }
  })
  const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`
  console.log(
    '| variant | median jobs/s | min–max | throughput cost (paired) | min–max | median CPU µs/job | min–max | CPU cost (paired) | min–max |',
  )
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const s of summary) {
    const none = s.variant === 'none'
    const cost = (x: number, range: number[]) =>
      none ? '– | –' : `${pct(x)} | ${pct(range[0] as number)} to ${pct(range[1] as number)}`
    console.log(
      `| ${s.variant} | ${s.medianPerSecond} | ${s.min}–${s.max} | ${cost(s.overhead, s.overheadMinMax)} | ${s.medianCpuMicros} | ${s.cpuMinMax[0]}–${s.cpuMinMax[1]} | ${cost(s.cpuOverhead, s.cpuOverheadMinMax)} |`,
    )
  }
  const dir = fileURLToPath(new URL('../results/', import.meta.url))
  mkdirSync(dir, { recursive: true })
  const file = `${dir}otel-overhead-${new Date().toISOString().replace(/[:.]/g, '-')}.json`
  const command = `node --import tsx --conditions=source src/otel-overhead.ts --runs ${runs} --jobs ${jobs}`
  writeFileSync(
    file,
    `${JSON.stringify({ workload: 'drain-c50 memory', command, jobs, runs, node: process.version, loadavg: loadavg(), summary }, null, 2)}\n`,
  )
  console.log(`\nwritten ${file}`)
}

const HELP = `Usage: node --import tsx --conditions=source src/otel-overhead.ts [options]
  --runs N        rounds; each runs every variant once in a fresh process, order rotating (default 7)
  --jobs N        messages per timed drain (default 40000)
  --child NAME    run one variant in this process and print its JSON line (none, api, ctx-only,
                  sdk-floor, sdk; breakdowns: sdk-noctx, sdk-traces, sdk-metrics)
  --profile FILE  with --child: write a CPU profile of the timed drain only`

const childAt = process.argv.indexOf('--child')
if (process.argv.includes('--help')) console.log(HELP)
else if (childAt >= 0) await child(process.argv[childAt + 1] as Variant, arg('jobs', 40_000))
else parent(arg('runs', 7), arg('jobs', 40_000))
