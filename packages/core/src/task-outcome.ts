import type { DeadLetterReason, Delivery } from './broker.js'
import type { Envelope } from './envelope.js'
import {
  CanceledError,
  RejectTaskError,
  RetryTaskError,
  type SerializedError,
  serializeError,
} from './errors.js'
import type { WorkerEvents } from './events-runtime.js'
import { backoffDelay } from './retry.js'
import type { Runtime } from './runtime.js'
import { addLineage, type MutableRecord, recordLineage } from './start-run.js'
import type { AnyTask } from './task.js'
import type { RunFacts } from './task-telemetry.js'
import type { ResolvedWorkerOptions, TaskInfo, WorkerHooks } from './worker-options.js'

// The outcome writers: how one delivery ends. Each stores the task's record, moves its workflow on
// (or down its failure path), settles the delivery last (a crash before the ack means the task
// runs again, never that its outcome is lost), then emits the event and calls the hook.

/** Stores outcomes, walks workflows and settles deliveries for one started worker. */
export class TaskOutcomes {
  constructor(
    private readonly rt: Runtime,
    private readonly options: ResolvedWorkerOptions,
    /** Lifecycle events (undefined with `events: false` or no event store). */
    private readonly emit: WorkerEvents | undefined,
  ) {}

  /** Success: store SUCCESS and start what follows, then ack. */
  async succeeded(
    d: Delivery,
    env: Envelope,
    info: TaskInfo,
    task: AnyTask,
    output: unknown,
    run: RunFacts,
  ): Promise<void> {
    const rt = this.rt
    const backend = rt.backend
    if (backend === undefined) {
      // Nothing to store: the next step (if any), then the ack.
      if (env.stack !== undefined && env.stack.length > 0) await rt.dispatcher.succeeded(env, output)
      await d.ack()
    } else {
      // The state leads, as a Redis backend stores it (it then serialises the record as it is).
      const record: MutableRecord = {
        state: 'SUCCESS',
        id: env.id,
        task: env.task,
        result: output,
        attempts: info.attempt,
        createdAt: env.createdAt,
      }
      addLineage(record, env)
      record.startedAt = run.startedAt
      record.finishedAt = Date.now()
      if (run.fields !== undefined) Object.assign(record, run.fields)
      const options = { ttlMs: task.resultTtlMs ?? rt.resultTtlMs }
      if (d.ackWithRecord) {
        // One store: the next step first (the ack must follow it), then the outcome and the ack
        // in one step.
        await rt.dispatcher.succeeded(env, output)
        if ((await d.ackWithRecord(backend, record, options)) === undefined) {
          await backend.setState(record, options)
          await d.ack()
        }
      } else {
        // The outcome and the next step are written side by side; the ack waits for both.
        if (env.stack === undefined || env.stack.length === 0) await backend.setState(record, options)
        else await Promise.all([backend.setState(record, options), rt.dispatcher.succeeded(env, output)])
        await d.ack()
      }
    }
    this.emit?.succeeded(env, info.attempt, run.startedAt)
    if (this.options.hooks?.onSuccess) await this.hook('onSuccess', info, output)
  }

  /** The handler failed: retry (re-publish with backoff, store RETRY, ack) while attempts last. */
  async attemptFailed(
    d: Delivery,
    env: Envelope,
    info: TaskInfo,
    task: AnyTask,
    err: unknown,
    run: RunFacts,
  ): Promise<void> {
    const rt = this.rt
    const error = serializeError(err)
    const rejected = err instanceof RejectTaskError
    if (!rejected && info.attempt < task.retry.attempts) {
      const delayMs =
        err instanceof RetryTaskError && err.delayMs !== undefined
          ? err.delayMs
          : backoffDelay(task.retry.backoff, info.attempt)
      const retry: Envelope = { ...env, attempt: info.attempt + 1 }
      if (delayMs > 0) retry.eta = Date.now() + delayMs
      else delete retry.eta
      await Promise.all([
        rt.dispatcher.publish([retry]),
        rt.backend?.setState(
          {
            id: env.id,
            state: 'RETRY',
            task: env.task,
            error,
            attempts: info.attempt,
            createdAt: env.createdAt,
            ...recordLineage(env),
            ...run.fields,
          },
          { ttlMs: task.resultTtlMs ?? rt.resultTtlMs },
        ),
      ])
      await d.ack()
      this.emit?.failed(env, info.attempt, error, delayMs, run.startedAt)
      await this.hook('onRetry', info, error, delayMs)
      return
    }
    return this.failed(d, env, info, rejected ? 'rejected' : 'exhausted', error, run)
  }

  /** A final failure: store FAILURE, walk the workflow's failure path, dead-letter the message. */
  async failed(
    d: Delivery,
    env: Envelope,
    info: TaskInfo,
    reason: DeadLetterReason,
    error: SerializedError,
    run?: RunFacts,
  ): Promise<void> {
    const rt = this.rt
    const ttlMs = rt.tasks.get(env.task)?.resultTtlMs ?? rt.resultTtlMs
    await Promise.all([
      rt.backend?.setState(
        {
          id: env.id,
          state: 'FAILURE',
          task: env.task,
          error,
          attempts: info.attempt,
          createdAt: env.createdAt,
          ...recordLineage(env),
          finishedAt: Date.now(),
          ...run?.fields,
        },
        { ttlMs },
      ),
      rt.dispatcher.failed(env, error),
    ])
    await this.deadLetter(d, info, reason, error)
    this.emit?.failed(env, info.attempt, error, undefined, run?.startedAt)
    this.emit?.deadLettered(env, info.attempt, reason, error)
    await this.hook('onFailure', info, error)
  }

  /** Canceled (CANCELED in the backend): fail the workflow's path, dead-letter as `canceled`. */
  async canceled(d: Delivery, env: Envelope, info: TaskInfo): Promise<void> {
    const error = serializeError(new CanceledError(env.id))
    await this.rt.dispatcher.failed(env, error)
    await this.deadLetter(d, info, 'canceled', error)
    this.emit?.canceled(env, info.attempt)
    this.emit?.deadLettered(env, info.attempt, 'canceled', error)
  }

  /** Dead-letter the delivery (with nothing else to store: an undecodable message). */
  async deadLetter(
    d: Delivery,
    info: Partial<TaskInfo>,
    reason: DeadLetterReason,
    error: SerializedError,
  ): Promise<void> {
    await d.deadLetter({ reason, error })
    this.rt.logger.warn(`dead-lettered a message: ${reason}`, {
      task: info.task,
      id: info.id,
      error: error.message,
    })
    await this.hook('onDeadLetter', info, reason, error)
  }

  /** Call a worker hook; one that throws is logged, never breaks the worker. */
  async hook<K extends keyof WorkerHooks>(
    name: K,
    ...args: Parameters<NonNullable<WorkerHooks[K]>>
  ): Promise<void> {
    const fn = this.options.hooks?.[name] as ((...a: unknown[]) => unknown) | undefined
    if (!fn) return
    try {
      await fn(...args)
    } catch (err) {
      this.rt.logger.error(`hook ${name} threw`, { error: String(err) })
    }
  }
}
