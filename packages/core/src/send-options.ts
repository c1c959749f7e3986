import type { DedupMode } from './dedup.js'

// Apart from send.ts so that what only names the options (tasks, the running task's `ctx.send`,
// the run-time checks) does not import the sending code, which imports them back.

/** Options of `App.send`. Unknown keys are refused (`ERR_INVALID_OPTION`). */
export interface SendOptions {
  /** Run no sooner than this many ms from now. */
  readonly countdownMs?: number
  /** Run no sooner than this time. */
  readonly eta?: Date | number
  /** Override the queue of the first task(s): 1 to 200 characters. */
  readonly queue?: string
  /** Override the priority of the first task(s): an integer >= 0. */
  readonly priority?: number
  /**
   * Headers carried by every task of the workflow (e.g. W3C `traceparent`): string values, no
   * `__proto__` key.
   */
  readonly headers?: Readonly<Record<string, string>>
  /**
   * Deduplicate sends by key; what a second send with the key does is `dedupMode`'s choice
   * (default `keep-first`: while the first send's task is not finished, a send with its key
   * returns the first send's handle and publishes nothing).
   */
  readonly dedupKey?: string
  /** Dedup window (debounce: the quiet period before the task starts). Default one hour. */
  readonly dedupTtlMs?: number
  /** `keep-first` (default), `throttle` or `debounce`: see {@link DedupMode}. */
  readonly dedupMode?: DedupMode
  /**
   * Dead-letter the task as `expired` (its handle rejects) if no worker has started it this
   * many ms from now. Applies to the tasks this send publishes (a chain's first step, a group's
   * members), not to later steps.
   */
  readonly expiresInMs?: number
  /** Like `expiresInMs`, as a time. */
  readonly expiresAt?: Date | number
  /**
   * Enqueue inside the caller's transaction (e.g. a `pg` client in `BEGIN`): the tasks exist iff
   * it commits. Needs a broker that supports it (`@errand/postgres`).
   */
  readonly tx?: unknown
}
