import { z } from 'zod'
import type { DeadLetterReason } from './broker.js'
import type { SerializedError } from './errors.js'

/** Facts about the task a hook is called for. */
export interface TaskInfo {
  readonly id: string
  readonly task: string
  readonly queue: string
  readonly attempt: number
}

/** Lifecycle hooks. A hook that throws is logged, never breaks the worker. */
export interface WorkerHooks {
  onStart?(info: TaskInfo): void | Promise<void>
  onSuccess?(info: TaskInfo, output: unknown): void | Promise<void>
  /** The task failed for good (after its retries, or rejected). */
  onFailure?(info: TaskInfo, error: SerializedError): void | Promise<void>
  onRetry?(info: TaskInfo, error: SerializedError, delayMs: number): void | Promise<void>
  /** A message went to the dead letters; `info` is partial when the message could not be decoded. */
  onDeadLetter?(
    info: Partial<TaskInfo>,
    reason: DeadLetterReason,
    error: SerializedError | undefined,
  ): void | Promise<void>
}

const hookFn = z.custom<(...args: never[]) => unknown>((v) => typeof v === 'function', {
  message: 'expected a function',
})

/** Options of `app.worker()`. Unknown keys are refused, naming the key. */
export const workerOptionsSchema = z
  .object({
    /** Queues to consume. Default: every queue the registered tasks name, plus the default queue. */
    queues: z.array(z.string().min(1)).min(1).optional(),
    /** Tasks run at once. Default 10. */
    concurrency: z.number().int().min(1).max(10_000).default(10),
    /** Deliveries held per queue. Default: `concurrency`. */
    prefetch: z.number().int().min(1).max(100_000).optional(),
    /** On stop, how long running tasks may take to finish before they are returned to the queue. Default 30 s. */
    shutdownGraceMs: z.number().int().min(0).default(30_000),
    /** Lease asked for each delivery, where the broker has leases; extended while the task runs. Default 30 s. */
    leaseMs: z.number().int().min(100).default(30_000),
    /**
     * Once a task was started `1 + maxRedeliveries` times without an outcome (its workers died
     * or lost the lease while running it), its next delivery is dead-lettered as `exhausted`. Starts are counted in
     * the result backend's STARTED record, so deliveries that were never started do not count;
     * without a backend (or with `trackStarted: false`) deliveries are counted instead. Default 5.
     */
    maxRedeliveries: z.number().int().min(0).default(5),
    /** How often running tasks are checked for cancellation. Default 500 ms. */
    cancelPollMs: z.number().int().min(10).default(500),
    /**
     * How often the paused queues are read (`app.pause()`), with a backend that has flow control.
     * Default 500 ms: a pause takes effect within a second.
     */
    pausePollMs: z.number().int().min(10).default(500),
    /** Record STARTED in the backend (this is also how a queued cancellation is seen). Default true. */
    trackStarted: z.boolean().default(true),
    hooks: z
      .object({
        onStart: hookFn.optional(),
        onSuccess: hookFn.optional(),
        onFailure: hookFn.optional(),
        onRetry: hookFn.optional(),
        onDeadLetter: hookFn.optional(),
      })
      .strict()
      .optional(),
  })
  .strict()

/** @see workerOptionsSchema */
export type WorkerOptions = Omit<z.input<typeof workerOptionsSchema>, 'hooks'> & {
  readonly hooks?: WorkerHooks
}
/** Options after defaults. */
export type ResolvedWorkerOptions = Omit<z.output<typeof workerOptionsSchema>, 'hooks'> & {
  readonly hooks?: WorkerHooks
}
