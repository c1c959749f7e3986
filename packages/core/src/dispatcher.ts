import type { Broker } from './broker.js'
import { Continuation } from './dispatch-continue.js'
import { type Lineage, Planner, type Settler, type Upstream } from './dispatch-plan.js'
import { Publisher, type PublishTarget } from './dispatch-publish.js'
import type { Envelope, WireFrame } from './envelope.js'
import type { SerializedError } from './errors.js'
import type { Instrumentation } from './instrumentation.js'
import type { ResultBackend } from './result-backend.js'
import type { AnyTask } from './task.js'

export { type Lineage, NO_INPUT } from './dispatch-plan.js'
export type { PublishTarget } from './dispatch-publish.js'

/** Settings the dispatcher needs from the app. */
export interface DispatcherSettings {
  readonly defaultQueue: string
  readonly resultTtlMs: number
  /** Chunk size for one `publish` call when sending many messages. */
  readonly publishChunk: number
  /** Tracing and metrics hooks (`createApp({ instrumentation })`). Default none. */
  readonly instrumentation?: readonly Instrumentation[]
}

/**
 * Moves workflows on, for `app.send` and the worker alike (so a workflow behaves the same whoever
 * moves it on). It puts together three parts, each in its own file: planning (`Planner`: which
 * envelopes start a node, no I/O), continuation (`Continuation`: the success and failure walks of
 * a settled task's stack, with their backend writes) and publishing (`Publisher`: encoding,
 * capabilities, delay hops, `Broker.publish`).
 */
export class Dispatcher implements Settler {
  /** The app's instrumentation; the worker reads it too (empty: nothing is called). */
  readonly instrumentation: readonly Instrumentation[]
  private readonly planner: Planner
  private readonly continuation: Continuation
  private readonly publisher: Publisher

  constructor(
    broker: Broker,
    backend: ResultBackend | undefined,
    tasks: ReadonlyMap<string, AnyTask>,
    settings: DispatcherSettings,
  ) {
    this.instrumentation = settings.instrumentation ?? []
    this.planner = new Planner(tasks, settings.defaultQueue, backend !== undefined, this)
    this.continuation = new Continuation(backend, settings.resultTtlMs, this.planner)
    this.publisher = new Publisher(broker, settings.publishChunk, this.instrumentation)
    this.queueOf = this.planner.queueOf
  }

  /** The queue a task node goes to: its own option, else its task's, else the app's default. */
  readonly queueOf: Planner['queueOf']

  /** Add to `out` the envelopes that start `node`, on top of `stack`. */
  plan(
    node: Parameters<Planner['plan']>[0],
    upstream: Upstream,
    stack: readonly WireFrame[],
    lineage: Lineage,
    out: Envelope[],
  ): Promise<void> {
    return this.planner.plan(node, upstream, stack, lineage, out)
  }

  /** After `env`'s task succeeded with `output`: walk its stack and publish what that starts. */
  async succeeded(env: Envelope, output: unknown): Promise<void> {
    if (!env.stack || env.stack.length === 0) return
    const next: Envelope[] = []
    await this.continuation.advance(output, env.stack, lineageAfter(env), next)
    await this.publisher.publish(next)
  }

  /** After `env`'s task failed for good with `error`: walk its failure path and publish what that starts. */
  async failed(env: Envelope, error: SerializedError): Promise<void> {
    if (!env.stack || env.stack.length === 0) return
    const next: Envelope[] = []
    await this.continuation.fail(
      error,
      { taskId: env.id, task: env.task },
      env.stack,
      lineageAfter(env),
      next,
    )
    await this.publisher.publish(next)
  }

  /** Success walk: hand `value` to the top of `stack`, adding what it starts to `out`. */
  advance(value: unknown, stack: readonly WireFrame[], lineage: Lineage, out: Envelope[]): Promise<void> {
    return this.continuation.advance(value, stack, lineage, out)
  }

  /**
   * Failure walk: `error` stopped a task for good. Fires `onError` callbacks, marks downstream
   * task ids FAILURE (so their result handles settle), and records the failure in groups.
   */
  fail(
    error: SerializedError,
    failed: { taskId: string; task: string },
    stack: readonly WireFrame[],
    lineage: Lineage,
    out: Envelope[],
  ): Promise<void> {
    return this.continuation.fail(error, failed, stack, lineage, out)
  }

  /**
   * Encode and publish envelopes, grouped by queue, through `target` (default: the broker).
   * Delays longer than the broker's `maxDelayMs` go out as the longest it allows; the worker
   * re-publishes the rest (a hop) and never runs a task before its `eta`.
   */
  publish(envelopes: readonly Envelope[], target?: PublishTarget): Promise<void> {
    return this.publisher.publish(envelopes, target)
  }
}

/** The lineage of the tasks that `env`'s task starts. */
function lineageAfter(env: Envelope): Lineage {
  return { root: env.root ?? env.id, parent: env.id, headers: env.headers }
}
