/** One job's payload, the same for every contender. `sentAt` is `performance.now()` at send. */
export interface Payload {
  n: number
  sentAt: number
  data: string
}

/**
 * The harness's handler, given each job a contender's worker takes. It returns a promise when the
 * workload's handler takes time (`drain-c50-h10`): the contender's handler must wait for it (a
 * promise that rejects is a failed attempt, to be retried when the run asks for retries). With
 * 0 ms handlers it returns `undefined` synchronously and a contender adds no await.
 */
export type OnJob = (p: Payload) => void | Promise<void>

/** What one run asks of a contender beyond its defaults. */
export interface RunOptions {
  /**
   * Failure-path workloads (`fail-c<k>`): retry a failed attempt this many times, at once (no
   * backoff), through the library's own retry. 0 (the default) leaves the library's defaults.
   */
  readonly retries?: number
}

/** Which side of the comparison a contender is on. */
export type ContenderClass = 'no-results' | 'results' | 'floor' | 'ceiling'

/** What a contender is, shown in the tables. */
export interface ContenderMeta {
  /** Unique within the store; passed as `--contender`. */
  readonly name: string
  readonly class: ContenderClass
  /** What a commit / publish waits for, in words (same column for every contender). */
  readonly durability: string
  /** A few words of `durability` for the result tables. */
  readonly durabilityShort: string
  /** Settings that differ from the library's defaults (or "defaults"), in words. */
  readonly settings: string
  /** Library and version, e.g. `bullmq 6.7.0`. */
  readonly library: string
  /**
   * Floors: the group this floor belongs to. Libraries: the floor group that bounds them (a
   * library faster than the fastest floor of its group marks the run invalid).
   */
  readonly floor?: string
  /** An Errand contender (ratios are Errand / peer). */
  readonly errand?: boolean
  /**
   * Workloads this contender cannot run (e.g. no bulk API): names, where `*` stands for any text
   * (`fail-*`: every failure-path workload; `drain-c*-h*`: every drain with handler time).
   */
  readonly unsupported?: readonly string[]
}

/**
 * One contender inside one run-one process: `setup` and `startWorker` happen before the clock
 * starts; the harness owns the clock.
 */
export interface Contender {
  /** Connect and create the (unique) queue, schema or key prefix of this run. */
  setup(): Promise<void>
  /** Enqueue one job; resolves when the store has it (at the durability the meta states). */
  enqueueOne(p: Payload): Promise<void>
  /** Enqueue many in one call (the library's bulk API). */
  enqueueBulk(ps: readonly Payload[]): Promise<void>
  /**
   * Start consuming at `concurrency` with a handler that calls `onJob` (and waits for what it
   * returns, when it returns a promise); resolves when running.
   */
  startWorker(concurrency: number, onJob: OnJob): Promise<void>
  stopWorker(): Promise<void>
  /** Jobs still in the store that were not handled (ready + in flight + delayed). */
  remaining(): Promise<number>
  /** Delete everything this run created (schema, keys, queues). */
  teardown(): Promise<void>
}

/** A store module under `canonical/stores/`. */
export interface StoreModule {
  readonly metas: readonly ContenderMeta[]
  /** `id` is unique per run (used in queue names, key prefixes, schema names). */
  create(name: string, id: string, options?: RunOptions): Contender
  /** Server and client versions, for the report. */
  versions(): Promise<Record<string, string>>
}

/** True when `meta` cannot run `workload` (a name or `*` pattern of its `unsupported`). */
export function unsupported(meta: ContenderMeta, workload: string): boolean {
  return (
    meta.unsupported?.some((u) =>
      new RegExp(
        `^${u
          .split('*')
          .map((part) => part.replace(/[.+?^${}()|[\]\\-]/g, '\\$&'))
          .join('.*')}$`,
      ).test(workload),
    ) ?? false
  )
}

/** One run's result: the JSON line run-one prints. */
export interface RunResult {
  contender: string
  workload: string
  ok: boolean
  /** Why verification failed (or the error). */
  error?: string
  jobs: number
  seconds?: number
  perSecond?: number
  p50Ms?: number
  p99Ms?: number
  p999Ms?: number
  handled?: number
  /** Failure-path runs: attempts that threw (each retried once). */
  failedAttempts?: number
  /** Open-loop runs: the producer's target rate and what the worker handled per second. */
  targetPerSecond?: number
  duplicates?: number
  missing?: number
  remaining?: number
  warmup: number
  pid: number
}
