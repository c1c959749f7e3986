import type { Envelope } from './envelope.js'

/** One attempt of a handler, as an {@link Instrumentation} sees it. */
export interface RunInfo {
  /** The task id (a retry keeps it). */
  readonly id: string
  /** The task name. */
  readonly task: string
  /** The queue the message came from. */
  readonly queue: string
  /** 1 on the first run; counts retries and redeliveries (`ctx.attempt`). */
  readonly attempt: number
  /**
   * The task's `retry.attempts`. A thrown error is retried while `attempt < maxAttempts`, unless
   * it is a `RejectTaskError` (code `ERR_REJECTED`); a final failure goes to the dead letters.
   */
  readonly maxAttempts: number
  /** The workflow's headers (e.g. W3C `traceparent` written by the producer). */
  readonly headers: Readonly<Record<string, string>>
  /** The first task of the workflow (its own id for a task sent alone). */
  readonly root: string
  /** The task whose outcome started this one, if any. */
  readonly parent: string | undefined
  /** When the message was first made (ms since the epoch); a retry keeps it. */
  readonly createdAt: number
  /** When it became due: its `eta` (a delay or a retry's backoff), else `createdAt`. */
  readonly dueAt: number
  /** The group or chord this task is a member of, when it is one. */
  readonly group: { readonly id: string; readonly index: number; readonly size: number } | undefined
}

/**
 * Hooks for tracing and metrics (e.g. `@errand/otel`), given as `createApp({ instrumentation })`.
 * Both are optional. With none given, publishing and running cost one `length === 0` check each.
 */
export interface Instrumentation {
  /**
   * Called with the envelopes about to be published (sends, next steps of a workflow, chord
   * callbacks, retries, delay hops), before they are encoded: it may replace an envelope's
   * `headers` (string values), e.g. to inject `traceparent`. Assign a new object rather than
   * mutating: a retry's envelope shares its headers object with the attempt that failed. A throw
   * is ignored (telemetry must not lose a send).
   */
  onPublish?(envelopes: readonly Envelope[]): void
  /**
   * Called by the worker around one attempt of a handler (from the handler's start to its output
   * passing the output schema); must call `run` once and return what it returns (or throws), so
   * the handler runs inside whatever context the wrapper sets (e.g. the consumer span's).
   */
  wrapRun?<T>(info: RunInfo, run: () => Promise<T>): Promise<T>
  /**
   * Optional: false while this instrumentation would do nothing around an attempt (no tracing or
   * metrics SDK registered). The worker then runs the attempt bare, without building its
   * `RunInfo`. Asked once per attempt, so an SDK registered later is picked up.
   */
  active?(): boolean
}

/** True when some instrumentation of `list` wants to wrap attempts now. */
export function wrapsRuns(list: readonly Instrumentation[]): boolean {
  for (const i of list) if (i.wrapRun !== undefined && (i.active === undefined || i.active())) return true
  return false
}

/** Tell every instrumentation about envelopes about to be published. */
export function notifyPublish(list: readonly Instrumentation[], envelopes: readonly Envelope[]): void {
  for (const i of list) {
    try {
      i.onPublish?.(envelopes)
    } catch {
      // Ignored on purpose: a tracing bug must not turn into a lost or failed send.
    }
  }
}

/** Run one attempt inside every instrumentation's `wrapRun` (the first given is the outermost). */
export function runInstrumented<T>(
  list: readonly Instrumentation[],
  env: Envelope,
  attempt: number,
  maxAttempts: number,
  run: () => Promise<T>,
): Promise<T> {
  const info = runInfo(env, attempt, maxAttempts)
  // The usual case, one instrumentation: called directly, no closure per attempt.
  if (list.length === 1) {
    const only = list[0] as Instrumentation
    return only.wrapRun ? only.wrapRun(info, run) : run()
  }
  let wrapped = run
  for (let i = list.length - 1; i >= 0; i--) {
    const owner = list[i] as Instrumentation
    if (!owner.wrapRun) continue
    const inner = wrapped
    wrapped = () => (owner.wrapRun ? owner.wrapRun(info, inner) : inner())
  }
  return wrapped()
}

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({})

function runInfo(env: Envelope, attempt: number, maxAttempts: number): RunInfo {
  const top = env.stack?.[env.stack.length - 1]
  return {
    id: env.id,
    task: env.task,
    queue: env.queue,
    attempt,
    maxAttempts,
    headers: env.headers ?? NO_HEADERS,
    root: env.root ?? env.id,
    parent: env.parent,
    createdAt: env.createdAt,
    dueAt: env.eta ?? env.createdAt,
    group: top?.t === 'join' ? { id: top.group, index: top.index, size: top.size } : undefined,
  }
}
