import type { QueueStats } from '@errand/core'
import type { BatchObservableCallback, Meter, ObservableGauge } from '@opentelemetry/api'
import { METRIC } from './metrics.js'

/** Options of {@link ErrandOtel.observeQueues}. */
export interface QueueGaugeOptions {
  /** Queues to sample. Default: `app.queues()` at each sample (the app's and the broker's). */
  readonly queues?: readonly string[]
  /**
   * Least time between two samplings of `app.stats()`, in ms; collections in between report the
   * last sample. Default 5000, at least 100: a scrape every second must not become a stats call
   * per queue per second on a shared store.
   */
  readonly intervalMs?: number
}

/** What the gauges read: an `App` fits. */
export interface StatsSource {
  stats(queue: string): Promise<QueueStats>
  queues(): Promise<string[]>
}

/** Stop sampling. */
export interface QueueGauges {
  close(): void
}

/** Observable gauges `errand.queue.{ready,delayed,in_flight,dead}` (attribute `queue`). */
export function observeQueueGauges(
  meter: Meter,
  app: StatsSource,
  options: QueueGaugeOptions = {},
): QueueGauges {
  const intervalMs = Math.max(100, options.intervalMs ?? 5000)
  const gauge = (name: string, description: string): ObservableGauge =>
    meter.createObservableGauge(name, { description })
  const ready = gauge(METRIC.ready, 'Messages ready to be delivered')
  const delayed = gauge(METRIC.delayed, 'Messages waiting for their eta (where the store can tell)')
  const inFlight = gauge(METRIC.inFlight, 'Messages delivered and not settled (where the store can tell)')
  const dead = gauge(METRIC.dead, 'Dead letters')
  let sample: [string, QueueStats][] = []
  let takenAt = Number.NEGATIVE_INFINITY
  let pending: Promise<void> | undefined
  const refresh = async (): Promise<void> => {
    const queues = options.queues ?? (await app.queues())
    const read = await Promise.all(
      queues.map((q) =>
        app.stats(q).then(
          (s): [string, QueueStats] => [q, s],
          () => undefined,
        ),
      ),
    )
    sample = read.filter((r): r is [string, QueueStats] => r !== undefined)
    takenAt = Date.now()
  }
  const callback: BatchObservableCallback = async (result) => {
    if (Date.now() - takenAt >= intervalMs) {
      pending ??= refresh()
        .catch(() => {})
        .finally(() => {
          pending = undefined
        })
      await pending
    }
    for (const [queue, s] of sample) {
      const a = { queue }
      result.observe(ready, s.ready, a)
      if (s.delayed !== undefined) result.observe(delayed, s.delayed, a)
      if (s.inFlight !== undefined) result.observe(inFlight, s.inFlight, a)
      result.observe(dead, s.dead, a)
    }
  }
  const all = [ready, delayed, inFlight, dead]
  meter.addBatchObservableCallback(callback, all)
  return { close: () => meter.removeBatchObservableCallback(callback, all) }
}
