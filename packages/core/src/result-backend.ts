import type { SerializedError } from './errors.js'
import type { BackendEventSubscription, EventFilter, TaskEvent } from './events.js'

/** Life of a task, as the result backend records it. */
export type TaskState = 'PENDING' | 'RECEIVED' | 'STARTED' | 'RETRY' | 'SUCCESS' | 'FAILURE' | 'CANCELED'

/** Every task state. */
export const TASK_STATES: ReadonlySet<TaskState> = new Set<TaskState>([
  'PENDING',
  'RECEIVED',
  'STARTED',
  'RETRY',
  'SUCCESS',
  'FAILURE',
  'CANCELED',
])

/** True when `value` names a task state. */
export function isTaskState(value: unknown): value is TaskState {
  return TASK_STATES.has(value as TaskState)
}

/** States after which nothing more happens to a task. */
export const FINAL_STATES: ReadonlySet<TaskState> = new Set(['SUCCESS', 'FAILURE', 'CANCELED'])

/** True for SUCCESS, FAILURE and CANCELED. */
export function isFinalState(state: TaskState): boolean {
  return FINAL_STATES.has(state)
}

/** What the backend keeps per task id. JSON-safe. */
export interface TaskRecord {
  readonly id: string
  readonly state: TaskState
  readonly task?: string
  /** The queue the task was sent to. */
  readonly queue?: string
  /** The first task of its workflow (absent on a workflow's first task). */
  readonly root?: string
  /** The task that sent or preceded this one (`ctx.send` from a handler, a chain step, …). */
  readonly parent?: string
  /** The handler's output, on SUCCESS. */
  readonly result?: unknown
  /** On FAILURE (and RETRY: the last error). */
  readonly error?: SerializedError
  /** Attempts made so far. */
  readonly attempts?: number
  /**
   * On STARTED: how many times workers have started this attempt of the task (1 on its first
   * run; more after a worker died or lost the lease while running it). The worker's
   * `maxRedeliveries` budget counts these, so deliveries a worker received but never started do
   * not spend it. Stored as part of the record like any other field.
   */
  readonly starts?: number
  readonly createdAt?: number
  readonly startedAt?: number
  readonly finishedAt?: number
  /** For canvases: the child task ids this record stands for. */
  readonly children?: readonly string[]
  /** The last value the handler passed to `ctx.progress` (JSON, at most 4 KiB). */
  readonly progress?: unknown
  /** Lines the handler wrote with `ctx.log` in its latest attempt, oldest first (capped). */
  readonly logs?: readonly TaskLogLine[]
}

/** One line a handler wrote with `ctx.log.info(…)` (or debug/warn/error), kept with its record. */
export interface TaskLogLine {
  /** When it was written (ms since the epoch). */
  readonly at: number
  readonly level: 'debug' | 'info' | 'warn' | 'error'
  /** The message, with its fields as JSON after it when there were any (cut at 1 KiB). */
  readonly message: string
}

/** The outcome of one group member, as stored by {@link ResultBackend.completeGroupMember}. */
export type MemberOutcome =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: SerializedError }

/** What {@link ResultBackend.completeGroupMember} answers. */
export interface GroupProgress {
  /** Members recorded so far (distinct indexes). */
  readonly completed: number
  /**
   * True for the call that recorded the last missing member, and for a repeated call for an
   * already-recorded member once the group is complete (a redelivery after a crash must be able
   * to fire the callback it may have missed).
   */
  readonly done: boolean
  /** Outcomes in member order, present when `done`. */
  readonly outcomes?: readonly MemberOutcome[]
}

/** Static facts about a backend. Build with {@link resultBackendCapabilities}. */
export interface ResultBackendCapabilities {
  /** `waitFor` is pushed by the store (pub/sub, LISTEN/NOTIFY) rather than polled. */
  readonly pushWait: boolean
  /**
   * The backend stores and broadcasts task events: it implements `publishEvents`,
   * `subscribeEvents` and `recentEvents` (see `EventStore` in `events.ts`). Default false.
   */
  readonly events: boolean
  /**
   * The backend offers rate limits, group concurrency slots, paused queues and `putValue`: it
   * implements `FlowControlStore` (see `flow-control.ts`). Default false.
   */
  readonly flowControl: boolean
}

/** Defaults for every backend capability. */
export const DEFAULT_RESULT_BACKEND_CAPABILITIES: ResultBackendCapabilities = Object.freeze({
  pushWait: false,
  events: false,
  flowControl: false,
})

/** Fills unspecified flags with defaults. */
export function resultBackendCapabilities(
  partial: Partial<ResultBackendCapabilities>,
): ResultBackendCapabilities {
  return Object.freeze({ ...DEFAULT_RESULT_BACKEND_CAPABILITIES, ...partial })
}

/** Options of {@link ResultBackend.setState}. */
export interface SetStateOptions {
  /** Expire the record this long after this write. */
  readonly ttlMs: number
}

/**
 * Where task states, results, group counters and small claims live.
 *
 * Every method is atomic on its own. Records expire `ttlMs` after their last write.
 */
export interface ResultBackend {
  readonly name: string
  readonly capabilities: ResultBackendCapabilities
  connect(): Promise<void>
  close(): Promise<void>
  /**
   * Write a task's record (replacing the stored one) and wake its waiters when the state is
   * final. A CANCELED record is never overwritten: the call then leaves it and returns
   * `'CANCELED'`. Returns the state stored after the call.
   */
  setState(record: TaskRecord, options: SetStateOptions): Promise<TaskState>
  getState(id: string): Promise<TaskRecord | undefined>
  /** Records of many ids in one round trip, in the order asked (`undefined` where unknown). */
  getStates(ids: readonly string[]): Promise<(TaskRecord | undefined)[]>
  /**
   * Resolve with the record once its state is final (at once if it already is). Rejects with
   * the signal's reason when `signal` aborts. Must not miss a write racing the call.
   */
  waitFor(id: string, options: { signal: AbortSignal }): Promise<TaskRecord>
  /**
   * Atomically record member `index` of a group of `size` and count distinct members. The call
   * that completes the group gets `done: true` and the outcomes in index order. Recording the
   * same index twice does not count twice. The bookkeeping expires `ttlMs` after the last call.
   */
  completeGroupMember(
    groupId: string,
    index: number,
    size: number,
    outcome: MemberOutcome,
    options: SetStateOptions,
  ): Promise<GroupProgress>
  /** Set `key` to `value` unless it exists; true when this call set it. Expires after `ttlMs`. */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>
  /** The value under `key`, if present and not expired. */
  getValue(key: string): Promise<string | undefined>
  /** Where `capabilities.events` is true: store and broadcast events (see `EventStore`). */
  publishEvents?(events: readonly TaskEvent[]): Promise<void>
  /** Where `capabilities.events` is true: live events from every instance (see `EventStore`). */
  subscribeEvents?(
    filter: EventFilter,
    onEvent: (event: TaskEvent) => void,
  ): Promise<BackendEventSubscription>
  /** Where `capabilities.events` is true: the last events of a queue, oldest first. */
  recentEvents?(queue: string, limit: number): Promise<TaskEvent[]>
}
