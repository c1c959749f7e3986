import type { Envelope, RunInfo } from '@errand/core'
import type { Attributes, Counter, Histogram, Meter } from '@opentelemetry/api'
import type { FailedAttempt } from './outcome.js'

/** Metric names (OpenTelemetry style; Prometheus shows `errand_tasks_sent_total` etc.). */
export const METRIC = {
  sent: 'errand.tasks.sent',
  started: 'errand.tasks.started',
  succeeded: 'errand.tasks.succeeded',
  failed: 'errand.tasks.failed',
  retried: 'errand.tasks.retried',
  deadLettered: 'errand.tasks.dead_lettered',
  runTime: 'errand.task.run_time',
  queueWait: 'errand.task.queue_wait',
  ready: 'errand.queue.ready',
  delayed: 'errand.queue.delayed',
  inFlight: 'errand.queue.in_flight',
  dead: 'errand.queue.dead',
} as const

/** Bucket bounds in seconds: 1 ms to 5 min, for no-op tasks and long ones alike. */
const SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]

/** Most distinct task × queue attribute sets kept (each is one object reused per data point). */
const MAX_ATTRIBUTE_SETS = 1000

/**
 * Task counters and histograms, attributes `task` and `queue` (dead letters add `reason`). The
 * attribute objects are made once per task and queue and reused: a fresh object per data point
 * is an allocation per task on the hot path.
 */
export class ErrandMetrics {
  private readonly sent: Counter
  private readonly started: Counter
  private readonly succeeded: Counter
  private readonly failed: Counter
  private readonly retried: Counter
  private readonly deadLettered: Counter
  private readonly runTime: Histogram
  private readonly queueWait: Histogram
  private readonly sets = new Map<string, Attributes>()

  constructor(meter: Meter) {
    this.sent = meter.createCounter(METRIC.sent, {
      description: 'Tasks published (first attempts; retries are counted as retried)',
    })
    this.started = meter.createCounter(METRIC.started, { description: 'Attempts started by a worker' })
    this.succeeded = meter.createCounter(METRIC.succeeded, { description: 'Attempts that succeeded' })
    this.failed = meter.createCounter(METRIC.failed, { description: 'Attempts that threw (retried or not)' })
    this.retried = meter.createCounter(METRIC.retried, {
      description: 'Failed attempts that will be retried',
    })
    this.deadLettered = meter.createCounter(METRIC.deadLettered, {
      description: 'Attempts whose message went to the dead letters (attribute reason)',
    })
    const advice = { explicitBucketBoundaries: SECONDS_BUCKETS }
    this.runTime = meter.createHistogram(METRIC.runTime, {
      description: 'Handler run time of one attempt',
      unit: 's',
      advice,
    })
    this.queueWait = meter.createHistogram(METRIC.queueWait, {
      description: 'Time from when a task was due (created, or its eta) to its start',
      unit: 's',
      advice,
    })
  }

  published(envelopes: readonly Envelope[]): void {
    for (const env of envelopes) if (env.attempt === 1) this.sent.add(1, this.attributes(env.task, env.queue))
  }

  /** An attempt starts `now` (ms). */
  start(info: RunInfo, now: number): void {
    const a = this.attributes(info.task, info.queue)
    this.started.add(1, a)
    this.queueWait.record(Math.max(0, now - info.dueAt) / 1000, a)
  }

  finished(info: RunInfo, ms: number, failure: FailedAttempt | undefined): void {
    const a = this.attributes(info.task, info.queue)
    this.runTime.record(ms / 1000, a)
    if (!failure) {
      this.succeeded.add(1, a)
      return
    }
    if (failure.outcome === 'returned') return
    this.failed.add(1, a)
    if (failure.outcome === 'retried') this.retried.add(1, a)
    else this.deadLettered.add(1, { ...a, reason: failure.reason ?? 'exhausted' })
  }

  private attributes(task: string, queue: string): Attributes {
    const key = `${task}\u0000${queue}`
    let a = this.sets.get(key)
    if (!a) {
      a = { task, queue }
      if (this.sets.size < MAX_ATTRIBUTE_SETS) this.sets.set(key, a)
    }
    return a
  }
}
