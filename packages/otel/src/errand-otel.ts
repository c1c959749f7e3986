import type { Envelope, Instrumentation, RunInfo } from '@errand/core'
import { context, type MeterProvider, metrics, type TracerProvider, trace } from '@opentelemetry/api'
import { ErrandMetrics } from './metrics.js'
import { classifyFailure } from './outcome.js'
import {
  observeQueueGauges,
  type QueueGaugeOptions,
  type QueueGauges,
  type StatsSource,
} from './queue-gauges.js'
import { ErrandTracing } from './tracing.js'

const SCOPE = '@errand/otel'
const VERSION = '0.1.0'

/** Options of {@link errandOtel}. */
export interface ErrandOtelOptions {
  /** Where spans go. Default: the global one (`trace.getTracerProvider()`, a no-op until an SDK registers). */
  readonly tracerProvider?: TracerProvider
  /** Where metrics go. Default: the global one (`metrics.getMeterProvider()`). */
  readonly meterProvider?: MeterProvider
  /** Spans on publish and per attempt. Default true. */
  readonly traces?: boolean
  /** Task counters and histograms. Default true. */
  readonly metrics?: boolean
  /** Most links from a chord callback's producer span to its members' spans. Default 128. */
  readonly maxLinks?: number
}

/**
 * Errand's OpenTelemetry instrumentation: give it to `createApp({ instrumentation: [otel] })`.
 * Depends on `@opentelemetry/api` only; with no SDK registered every call is a no-op of the API
 * (measured in bench/: see the package README).
 */
export class ErrandOtel implements Instrumentation {
  private readonly tracing: ErrandTracing | undefined
  private readonly taskMetrics: ErrandMetrics | undefined
  private readonly meterProvider: MeterProvider | undefined

  /** @internal Use {@link errandOtel}. */
  constructor(options: ErrandOtelOptions = {}) {
    if (options.traces !== false) {
      const provider = options.tracerProvider ?? trace.getTracerProvider()
      this.tracing = new ErrandTracing(provider, options.maxLinks ?? 128, SCOPE, VERSION)
    }
    this.meterProvider = options.meterProvider
    if (options.metrics !== false) {
      const taskMetrics = new ErrandMetrics(this.meter())
      if (taskMetrics.live) this.taskMetrics = taskMetrics
    }
  }

  /** @internal Called by core before envelopes are published. */
  onPublish(envelopes: readonly Envelope[]): void {
    this.taskMetrics?.published(envelopes)
    this.tracing?.publish(envelopes)
  }

  /** False while no SDK is registered: the worker then runs attempts bare. */
  active(): boolean {
    return this.taskMetrics !== undefined || this.tracing?.enabled === true
  }

  /** @internal Called by core's worker around one attempt of a handler. */
  wrapRun<T>(info: RunInfo, run: () => Promise<T>): Promise<T> {
    // With no SDK (no meter at construction, the tracer provider still the API's no-op) the
    // attempt runs bare: no clock reads, no context, no promise chained on the handler's. (The
    // worker skips this call when no instrumentation is active, not when another one is.)
    if (!this.active()) return run()
    const taskMetrics = this.taskMetrics
    const t0 = performance.now()
    taskMetrics?.start(info, Date.now())
    const started = this.tracing?.startRun(info)
    const work = started ? context.with(started.ctx, run) : run()
    return work.then(
      (output) => {
        taskMetrics?.finished(info, performance.now() - t0, undefined)
        if (started) this.tracing?.succeeded(started.span)
        return output
      },
      (err: unknown) => {
        const failure = classifyFailure(err, info)
        taskMetrics?.finished(info, performance.now() - t0, failure)
        if (started) this.tracing?.failed(started.span, err, failure, info)
        throw err
      },
    )
  }

  /**
   * Observable gauges of ready / delayed / in-flight / dead messages per queue, sampled from
   * `app.stats()` at most once per `intervalMs` (default 5 s) whatever the collection rate.
   *
   * @example
   * ```ts
   * const gauges = otel.observeQueues(app, { queues: ['default', 'emails'], intervalMs: 10_000 })
   * ```
   */
  observeQueues(app: StatsSource, options: QueueGaugeOptions = {}): QueueGauges {
    return observeQueueGauges(this.meter(), app, options)
  }

  private meter() {
    return (this.meterProvider ?? metrics.getMeterProvider()).getMeter(SCOPE, VERSION)
  }
}

/**
 * Make the instrumentation.
 *
 * @example
 * ```ts
 * import { errandOtel } from '@errand/otel'
 * const otel = errandOtel()            // global tracer and meter providers
 * const app = createApp({ broker: 'redis://127.0.0.1:6379', backend: 'redis://127.0.0.1:6379', tasks, instrumentation: [otel] })
 * otel.observeQueues(app)
 * ```
 */
export function errandOtel(options: ErrandOtelOptions = {}): ErrandOtel {
  return new ErrandOtel(options)
}
