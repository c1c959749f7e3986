import { Buffer } from 'node:buffer'
import type { Envelope } from './envelope.js'
import { CanceledError, ValidationError } from './errors.js'
import type { WorkerEvents } from './events-runtime.js'
import type { Logger } from './logger.js'
import type { TaskLogLine, TaskRecord, TaskState } from './result-backend.js'
import type { RunningTask } from './running-task.js'
import type { Runtime } from './runtime.js'
import { formatPath } from './validation.js'
import { checkWireValue } from './wire-check.js'

/** Largest `ctx.progress` value, as JSON bytes. Beyond it `ctx.progress` throws `ERR_VALIDATION`. */
export const PROGRESS_MAX_BYTES = 4096
/** Log lines kept per task record (the oldest go first). */
export const TASK_LOG_MAX_LINES = 100
/** Bytes of log lines kept per task record (the oldest go first). */
export const TASK_LOG_MAX_BYTES = 16 * 1024
/** Longest kept log line, bytes (longer ones are cut and end in `…`). */
export const TASK_LOG_LINE_MAX_BYTES = 1024
/** At most one record write (and one `progress` event) per task this often, ms; the last value wins. */
export const PROGRESS_WRITE_EVERY_MS = 250

/** What the telemetry adds to the task's records. */
export interface TelemetryFields {
  progress?: unknown
  logs?: TaskLogLine[]
}

/** How a {@link TaskTelemetry} reaches the outside. Built once per worker. */
export interface TelemetryOutlets {
  /** Write the task's STARTED record with the current progress and logs; undefined = nowhere to write. */
  readonly write?: ((record: TaskRecord) => Promise<TaskState>) | undefined
  /** Announce a progress value (the `progress` event). */
  readonly progress?: ((value: unknown) => void) | undefined
  /** Called when a write finds the task CANCELED (the worker aborts it). */
  readonly canceled: () => void
  /** The app's logger: every `ctx.log` line goes there as before. */
  readonly logger: Logger
}

/**
 * Progress and log lines of one running task (`ctx.progress`, `ctx.log`).
 *
 * Writes are throttled: the first `progress()` goes out at once, later ones at most every
 * {@link PROGRESS_WRITE_EVERY_MS} with the latest value (a tight loop calling `progress` a million
 * times costs four record writes a second, not a million). Log lines ride along with the next
 * write and with the final record. Made on first use, so a handler that never reports pays nothing.
 */
export class TaskTelemetry {
  #progress: unknown
  #hasProgress = false
  #progressChanged = false
  readonly #logs: TaskLogLine[] = []
  #logBytes = 0
  #dirty = false
  #lastWrite = 0
  #timer: NodeJS.Timeout | undefined
  #inflight: Promise<unknown> | undefined
  #finished = false
  #log: Logger | undefined

  constructor(
    private readonly base: TaskRecord,
    private readonly outlets: TelemetryOutlets,
  ) {}

  /** Record a progress value: a number or small JSON (throws `ERR_VALIDATION` past 4 KiB). */
  progress(value: unknown): void {
    const check = checkWireValue(value)
    if (!check.ok) {
      throw new ValidationError(
        `ctx.progress: ${formatPath('value', check.issue.path)}: ${check.issue.message}`,
        [check.issue],
      )
    }
    const json = JSON.stringify(value)
    const bytes = json === undefined ? 0 : Buffer.byteLength(json)
    if (json === undefined || bytes > PROGRESS_MAX_BYTES) {
      throw new ValidationError(
        json === undefined
          ? 'ctx.progress: expected a JSON value'
          : `ctx.progress: value is ${bytes} bytes as JSON, more than ${PROGRESS_MAX_BYTES}`,
        [{ path: [], message: 'too large' }],
      )
    }
    if (this.#finished) return
    this.#progress = JSON.parse(json)
    this.#hasProgress = true
    this.#progressChanged = true
    this.#schedule()
  }

  /** `ctx.log`: the app's logger, with each line also kept for the task record. */
  get log(): Logger {
    this.#log ??= {
      debug: (m, f) => this.#line('debug', m, f),
      info: (m, f) => this.#line('info', m, f),
      warn: (m, f) => this.#line('warn', m, f),
      error: (m, f) => this.#line('error', m, f),
    }
    return this.#log
  }

  /**
   * The handler ended: stop writing, wait for a write in flight (so it cannot land after the
   * final record on a store that does not keep call order), and give the fields for that record.
   */
  async finish(): Promise<TelemetryFields> {
    this.#finished = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#inflight) await this.#inflight
    const fields: TelemetryFields = {}
    if (this.#hasProgress) fields.progress = this.#progress
    if (this.#logs.length > 0) fields.logs = [...this.#logs]
    return fields
  }

  #line(level: TaskLogLine['level'], message: string, fields?: Record<string, unknown>): void {
    this.outlets.logger[level](message, fields)
    if (this.#finished) return
    let text = String(message)
    if (fields !== undefined && Object.keys(fields).length > 0) {
      try {
        text += ` ${JSON.stringify(fields)}`
      } catch {
        text += ' [fields not serialisable]'
      }
    }
    let bytes = Buffer.byteLength(text)
    if (bytes > TASK_LOG_LINE_MAX_BYTES) {
      text = `${Buffer.from(text)
        .subarray(0, TASK_LOG_LINE_MAX_BYTES - 3)
        .toString()}…`
      bytes = Buffer.byteLength(text)
    }
    this.#logs.push({ at: Date.now(), level, message: text })
    this.#logBytes += bytes
    while (
      this.#logs.length > TASK_LOG_MAX_LINES ||
      (this.#logBytes > TASK_LOG_MAX_BYTES && this.#logs.length > 1)
    ) {
      const dropped = this.#logs.shift()
      if (dropped) this.#logBytes -= Buffer.byteLength(dropped.message)
    }
    this.#schedule()
  }

  #schedule(): void {
    this.#dirty = true
    if (this.#timer !== undefined || this.#finished) return
    const wait = this.#lastWrite + PROGRESS_WRITE_EVERY_MS - Date.now()
    if (wait <= 0 && this.#inflight === undefined) {
      this.#flush()
      return
    }
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined
        if (this.#inflight) this.#schedule()
        else this.#flush()
      },
      Math.max(wait, 10),
    )
    this.#timer.unref()
  }

  #flush(): void {
    if (!this.#dirty || this.#finished) return
    this.#dirty = false
    this.#lastWrite = Date.now()
    if (this.#progressChanged) {
      this.#progressChanged = false
      this.outlets.progress?.(this.#progress)
    }
    const write = this.outlets.write
    if (!write) return
    const record: TaskRecord = {
      ...this.base,
      ...(this.#hasProgress && { progress: this.#progress }),
      ...(this.#logs.length > 0 && { logs: [...this.#logs] }),
    }
    this.#inflight = write(record)
      .then((state) => {
        if (state === 'CANCELED') this.outlets.canceled()
      })
      .catch((err: unknown) => {
        this.outlets.logger.warn('could not store task progress', { id: this.base.id, error: String(err) })
      })
      .finally(() => {
        this.#inflight = undefined
      })
  }
}

/** What a finished run hands to the worker code that settles it. */
export interface RunFacts {
  /** When the handler started (ms). */
  readonly startedAt: number
  /** Progress and log lines to keep on the record, when the handler used them. */
  readonly fields: TelemetryFields | undefined
}

/**
 * The worker's recorder factory for one run (`RunningTask.makeTelemetry`): progress goes into
 * `started` (the STARTED record `startRun` wrote, so `starts` is kept) or a plain STARTED record.
 */
export function telemetryMaker(
  rt: Runtime,
  env: Envelope,
  attempt: number,
  started: TaskRecord | undefined,
  ttlMs: number,
  emit: WorkerEvents | undefined,
): (running: RunningTask) => TaskTelemetry {
  return (running) =>
    makeTelemetry({
      base: started ?? {
        id: env.id,
        state: 'STARTED',
        task: env.task,
        attempts: attempt,
        startedAt: running.startedAt,
      },
      ttlMs,
      backend: rt.backend,
      onProgress: emit && ((value) => emit.progress(env, attempt, value)),
      onCanceled: () => running.abort(new CanceledError(env.id)),
      logger: rt.logger,
    })
}

/** What the worker knows about a run when it makes the recorder. */
export interface TelemetryRun {
  /** The STARTED record written for this run, or the one to write progress into. */
  readonly base: TaskRecord
  readonly ttlMs: number
  readonly backend:
    | { setState(record: TaskRecord, options: { ttlMs: number }): Promise<TaskState> }
    | undefined
  readonly onProgress: ((value: unknown) => void) | undefined
  readonly onCanceled: () => void
  readonly logger: Logger
}

/** A recorder for one run. */
export function makeTelemetry(run: TelemetryRun): TaskTelemetry {
  const { backend, ttlMs } = run
  return new TaskTelemetry(run.base, {
    write: backend ? (record) => backend.setState(record, { ttlMs }) : undefined,
    progress: run.onProgress,
    canceled: run.onCanceled,
    logger: run.logger,
  })
}
