/** A job payload: the same for every contender. `sentAt` is `performance.now()` at send. */
export interface BenchPayload {
  n: number
  sentAt: number
  data: string
}

/**
 * One queue implementation under test. Every contender runs the same workloads in the same
 * process; the harness owns the clock.
 */
export interface Contender {
  /** Shown in the table, with the version: `bullmq 6.7.0`, `errand redis`, `raw ioredis BRPOP`. */
  readonly name: string
  /** Connect and prepare an empty queue named `queue` (unique per workload run). */
  open(queue: string): Promise<void>
  /** Enqueue one job and wait until the store has it. */
  enqueueOne(payload: BenchPayload): Promise<void>
  /** Enqueue many jobs in one call (or the store's own batch API). */
  enqueueBulk(payloads: readonly BenchPayload[]): Promise<void>
  /** Start consuming at `concurrency` with a no-op handler that calls `onJob` once per job. */
  startWorker(concurrency: number, onJob: (payload: BenchPayload) => void): Promise<void>
  stopWorker(): Promise<void>
  /** Disconnect and delete what `open` created. */
  close(): Promise<void>
  /** Which workloads this contender does not support (e.g. a raw loop has no "bulk"). */
  readonly unsupported?: readonly WorkloadName[]
}

/** The workloads the harness runs. */
export type WorkloadName = 'enqueue-one' | 'enqueue-bulk' | 'drain-c1' | 'drain-c50' | 'latency'

/** A module under `contenders/` exports this: the contenders for one store, side by side. */
export type ContenderSet = () => Promise<Contender[]> | Contender[]
