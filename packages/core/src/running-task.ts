import type { AsyncResult } from './async-result.js'
import type { Delivery } from './broker.js'
import type { AnyCanvas } from './canvas.js'
import type { Envelope } from './envelope.js'
import {
  DeliveryLostError,
  ErrandError,
  RejectTaskError,
  SerializationError,
  TimeoutError,
} from './errors.js'
import type { Logger } from './logger.js'
import { Replaced } from './replaced.js'
import type { TaskRecord } from './result-backend.js'
import type { SendOptions } from './send-options.js'
import type { AnyTask, TaskContext } from './task.js'
import type { TaskTelemetry } from './task-telemetry.js'
import { formatPath } from './validation.js'
import { checkWireValue } from './wire-check.js'

/** Aborts a running task when the worker shuts down past its grace period. */
export class ShutdownError extends ErrandError {
  constructor() {
    super('ERR_CLOSED', 'worker shut down before the task finished; it was returned to the queue')
  }
}

/**
 * One running task. Its AbortSignal is made only when the handler reads `ctx.signal` (most never
 * do, and an AbortController per task is a measurable share of a no-op task's cost).
 */
export class RunningTask {
  lastExtendedAt: number
  /** Set when shutdown returned the delivery: the task's outcome must not settle it again. */
  abandoned = false
  /** Why the task was aborted (timeout, cancellation, shutdown), once it is. */
  reason: unknown
  private controller: AbortController | undefined
  private onAbort: ((reason: unknown) => void) | undefined
  #telemetry: TaskTelemetry | undefined
  /** @internal Makes the task's progress and log recorder on first use (set by the worker). */
  makeTelemetry: ((running: RunningTask) => TaskTelemetry) | undefined
  /** @internal What the worker's `makeTelemetry` needs about this run (set by the worker). */
  attempt = 0
  /** @internal The STARTED record this run wrote, if it wrote one. */
  startedRecord: TaskRecord | undefined
  /** @internal The TTL of this task's records. */
  ttlMs = 0
  /** `ctx.send`: sends with this task as parent (set by the worker). */
  sendChild:
    | ((running: RunningTask, canvas: AnyCanvas, options: SendOptions) => Promise<AsyncResult<unknown>>)
    | undefined

  constructor(
    readonly delivery: Delivery,
    readonly envelope: Envelope,
    readonly startedAt: number,
  ) {
    this.lastExtendedAt = startedAt
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController()
      if (this.reason !== undefined) this.controller.abort(this.reason)
    }
    return this.controller.signal
  }

  /** Progress and log lines (`ctx.progress`, `ctx.log`), made when the handler first uses them. */
  get telemetry(): TaskTelemetry | undefined {
    if (this.#telemetry === undefined && this.makeTelemetry) this.#telemetry = this.makeTelemetry(this)
    return this.#telemetry
  }

  /** The recorder if the handler used it, without making one. */
  get usedTelemetry(): TaskTelemetry | undefined {
    return this.#telemetry
  }

  /** The store took the message back: abort with `reason`, and nothing may settle it now. */
  lose(reason: unknown): void {
    this.abandoned = true
    this.abort(reason instanceof Error ? reason : new DeliveryLostError(String(reason)))
  }

  abort(reason: unknown): void {
    if (this.reason !== undefined) return
    this.reason = reason
    this.controller?.abort(reason)
    this.onAbort?.(reason)
  }

  /** Call `reject` with the reason when the task is aborted (at once if it already is). */
  rejectOnAbort(reject: (reason: unknown) => void): void {
    if (this.reason !== undefined) reject(this.reason)
    else this.onAbort = reject
  }
}

/** `ctx.replace`: the same for every task. */
function replace(canvas: unknown): Replaced<unknown> {
  return new Replaced(canvas as AnyCanvas)
}

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({})

/**
 * Run `task`'s handler for `env` with its context: `ctx.signal` aborts on timeout, cancellation
 * or shutdown, and the returned promise rejects with that reason at once (a handler that ignores
 * its signal cannot hold the worker's slot).
 */
export function runHandler(
  task: AnyTask,
  input: unknown,
  env: Envelope,
  attempt: number,
  running: RunningTask,
  log: Logger,
  leaseMs: number,
): Promise<unknown> {
  const { delivery } = running
  const timeoutMs = env.timeoutMs ?? task.timeoutMs
  const ctx: TaskContext = {
    id: env.id,
    task: env.task,
    attempt,
    get signal() {
      return running.signal
    },
    get log() {
      return running.makeTelemetry ? (running.telemetry as TaskTelemetry).log : log
    },
    // Methods, not arrows: the same behaviour (none uses `this`, so destructuring works), and no
    // name to set on each one at run time when the code is transpiled with its names kept.
    progress(value) {
      running.telemetry?.progress(value)
    },
    headers: env.headers ?? NO_HEADERS,
    rootId: env.root,
    parentId: env.parent,
    async heartbeat() {
      running.lastExtendedAt = Date.now()
      await delivery.extend?.(leaseMs)
    },
    replace: replace as TaskContext['replace'],
    send(canvas, options) {
      if (!running.sendChild) throw new ErrandError('ERR_CLOSED', 'ctx.send is not available here')
      return running.sendChild(running, canvas as AnyCanvas, options ?? {}) as never
    },
  }
  // One promise settled by whichever comes first: the handler's outcome, or the abort.
  return new Promise<unknown>((resolve, reject) => {
    if (timeoutMs === undefined) {
      running.rejectOnAbort(reject)
      Promise.resolve()
        .then(() => task.handler(input, ctx))
        .then(resolve, reject)
      return
    }
    const timer = setTimeout(
      () => running.abort(new TimeoutError(`task ${env.task} (${env.id}) timed out after ${timeoutMs} ms`)),
      timeoutMs,
    )
    running.rejectOnAbort((reason) => {
      clearTimeout(timer)
      reject(reason)
    })
    Promise.resolve()
      .then(() => task.handler(input, ctx))
      .then(
        (output) => {
          clearTimeout(timer)
          resolve(output)
        },
        (err: unknown) => {
          clearTimeout(timer)
          reject(err)
        },
      )
  })
}

/** The handler's output checked against the task's output schema (a mismatch is a RejectTaskError). */
export function parseOutput(task: AnyTask, output: unknown): unknown {
  const schema = task.outputSchema
  // A replacement's output is the canvas's, known later: the schema does not apply to it.
  if (!schema || output instanceof Replaced) return output
  const parsed = schema.safeParse(output)
  if (parsed.success) return parsed.data
  const first = parsed.error.issues[0]
  throw new RejectTaskError(
    `output of task "${task.name}" does not match its schema at ${first?.path.join('.') || '(root)'}: ${first?.message ?? 'invalid'}`,
  )
}

/**
 * An `ERR_SERIALIZATION` error when `output` cannot be stored or passed on as JSON (a BigInt, a
 * circular reference, a Map, a function, …: the same rules as a sent input), else undefined. One
 * walk over the output; a number or a small object costs well under a microsecond.
 */
export function unserializableOutput(task: AnyTask, output: unknown): SerializationError | undefined {
  if (output instanceof Replaced) return undefined
  const check = checkWireValue(output)
  if (check.ok) return undefined
  return new SerializationError(
    `output of task "${task.name}" cannot be serialised: ${formatPath('output', check.issue.path)}: ${check.issue.message}`,
    [check.issue],
  )
}
