import type { DisruptOptions } from './disruptor.js'
import type { StoreName } from './stores/rig.js'

/** Options of one chaos run. */
export interface ChaosOptions {
  readonly store: StoreName
  /** `short` (CI) or `full`: a label for the report, and the defaults below. */
  readonly variant: 'short' | 'full'
  /** Tasks to send (a chord counts its members and its callback). */
  readonly tasks: number
  readonly workers: number
  /** Tasks each worker runs at once. */
  readonly concurrency: number
  /** Lease of a delivery: short, so that a killed worker's deliveries come back soon. */
  readonly leaseMs: number
  readonly shutdownGraceMs: number
  readonly disrupt: DisruptOptions
  /** Garbage items to write while the workload is sent, evenly spread over `sendOverMs`. */
  readonly garbage: number
  /** Canvases per `sendMany`. */
  readonly sendBatch: number
  /**
   * Spread the sends over about this long: without it a store drains the whole workload in a few
   * seconds, before the disruptions have done anything.
   */
  readonly sendOverMs: number
  /** Bound on the whole wait for every handle to settle, from the first send. */
  readonly settleTimeoutMs: number
  /** Bound on the wait for the queue to empty once the disruptions stop. */
  readonly drainTimeoutMs: number
  /** Where to write the JSON report, and the workers' stderr log (`.log` beside it). */
  readonly reportPath?: string
  /** Progress lines. Default: none. */
  readonly log?: (line: string) => void
}

const DISRUPT: DisruptOptions = {
  killEveryMs: 1000,
  gracefulEvery: 8,
  cutGapMs: [2000, 5000],
  cutLengthMs: [500, 2000],
}

/** Defaults of a variant: `short` is 1,000 tasks in about a minute; `full` 10,000 tasks. */
export function chaosDefaults(store: StoreName, variant: 'short' | 'full'): ChaosOptions {
  const full = variant === 'full'
  return {
    store,
    variant,
    tasks: full ? 10_000 : 1_000,
    workers: 3,
    concurrency: 10,
    leaseMs: 4_000,
    shutdownGraceMs: 5_000,
    disrupt: DISRUPT,
    garbage: full ? 200 : 40,
    sendBatch: full ? 20 : 10,
    sendOverMs: full ? 300_000 : 30_000,
    settleTimeoutMs: full ? 1_200_000 : 180_000,
    drainTimeoutMs: 60_000,
  }
}
