import type { z } from 'zod'
import type { AsyncResult } from './async-result.js'
import {
  type Canvas,
  type OutputOf,
  SIGNATURE_OPTION_KEYS,
  Signature,
  type SignatureOptions,
} from './canvas.js'
import { requireOptions } from './canvas-checks.js'
import { makePartial, type OpenFields, type PartialBound, type PartialSignature } from './canvas-partial.js'
import { InvalidOptionError } from './errors.js'
import { type ConcurrencyLimit, concurrencyLimitSchema, type RateLimit, rateLimitSchema } from './limits.js'
import type { Logger } from './logger.js'
import type { Replaced } from './replaced.js'
import { type RetryPolicy, retryPolicySchema } from './retry.js'
import type { SendOptions } from './send-options.js'
import { parseOrThrow } from './validation.js'

/** What a handler gets besides its input. */
export interface TaskContext {
  /** The task id (stable across retries). */
  readonly id: string
  readonly task: string
  /** 1 on the first run; grows with retries and with redeliveries after a lost worker. */
  readonly attempt: number
  /** Aborted on timeout, cancellation, or shutdown past the grace period. Pass it on to I/O. */
  readonly signal: AbortSignal
  /**
   * The app's logger. Each line is also kept with the task's record (the last 100 lines or
   * 16 KiB of the latest attempt), readable with `result.logs()` and `errand result`.
   */
  readonly log: Logger
  /**
   * Report progress: a number (`0.42`) or small JSON (`{ done: 42, of: 100 }`), at most 4 KiB
   * (`ERR_VALIDATION` beyond). Stored on the task's record (`result.progress()`) and sent as a
   * `progress` event, at most every 250 ms per task (the last value wins), so calling it in a
   * tight loop is cheap.
   */
  progress(value: unknown): void
  /** Headers sent with the task (W3C `traceparent` among them). */
  readonly headers: Readonly<Record<string, string>>
  /** First task of the workflow this task belongs to. */
  readonly rootId: string | undefined
  /** The task whose output started this one. */
  readonly parentId: string | undefined
  /** Extend the delivery's lease now. The worker also does this on its own while the task runs. */
  heartbeat(): Promise<void>
  /**
   * Hand this task's place to `canvas` (Celery's `self.replace`): `return ctx.replace(canvas)`.
   * The canvas is sent when the handler returns it, with this task as the parent of its tasks
   * (and this task's root as their root); its output (or failure) becomes this task's result,
   * and the workflow goes on from there: the rest of a chain runs after the canvas, a group or
   * chord member's slot gets the canvas's output. The canvas must be ready to send (bound input);
   * one that cannot be sent fails this task with `ERR_VALIDATION`. The task's output schema is not
   * applied to the canvas's output.
   *
   * @example
   * ```ts
   * handler: (n, ctx) => (n <= 100 ? n : ctx.replace(chain(half.s(n), check.s())))
   * ```
   */
  replace<C extends Canvas<never, unknown, true>>(canvas: C): Replaced<OutputOf<C>>
  /**
   * Send a task or canvas from the handler, as `app.send` does, with this task as the parent of
   * what it starts and this task's root as their root: their records, events, `errand result` and
   * the dashboard show the lineage. Headers (`traceparent`) carry over unless `options.headers`
   * is given. Resolves once the broker has the message(s); the handler may wait on the handle.
   *
   * @example
   * ```ts
   * handler: async ({ orderId }, ctx) => {
   *   await ctx.send(sendReceipt.s({ orderId }))
   * }
   * ```
   */
  send<C extends Canvas<never, unknown, true>>(
    canvas: C,
    options?: SendOptions,
  ): Promise<AsyncResult<OutputOf<C>>>
}

/**
 * How a handler is written. It returns its output, or hands its place to a canvas with
 * `return ctx.replace(canvas)` (whose output must then be the task's output type).
 */
export type TaskHandler<In, Out> = (
  input: In,
  ctx: TaskContext,
) => Out | Replaced<Out> | Promise<Out | Replaced<Out>>

interface TaskDefinitionBase<I extends z.ZodType> {
  /** Unique name, sent on the wire (`image.resize`). */
  readonly name: string
  /** Schema of the input: checked at send and again before the handler runs. */
  readonly input: I
  /**
   * Attempts and backoff. Default `{ attempts: 1 }`: a handler that throws is not run again.
   *
   * Retrying is opt-in because it repeats the handler's side effects (an email, a charge), which
   * only the task's author can know are safe; BullMQ (attempts 1) and Celery (no autoretry) make
   * the same choice, Sidekiq (25) assumes every job is idempotent. A worker lost mid-run is a
   * different matter: the task comes back whatever `attempts` says, up to the worker's
   * `maxRedeliveries`. Ask for retries where the handler is idempotent, e.g.
   * `{ attempts: 5, backoff: { type: 'exponential', delayMs: 1000, jitter: true } }`.
   */
  readonly retry?: RetryPolicy
  /** Abort `ctx.signal` and fail the attempt after this long. Default: no timeout. */
  readonly timeoutMs?: number
  /** Default queue. Default `default`. */
  readonly queue?: string
  /** Default priority (0..broker maxPriority). */
  readonly priority?: number
  /** Keep the result this long. Default: the app's `resultTtlMs`. */
  readonly resultTtlMs?: number
  /**
   * At most `max` starts per `perMs` across every worker, optionally per key of the input
   * (`{ max: 10, perMs: 1000, key: (i) => i.accountId }`). Needs a result backend with flow
   * control (memory, Redis, PostgreSQL, SQLite). See {@link RateLimit}.
   */
  readonly rateLimit?: RateLimit<z.output<I>>
  /**
   * At most `max` running at once across every worker, optionally per key of the input. Needs a
   * result backend with flow control. See {@link ConcurrencyLimit}.
   */
  readonly concurrency?: ConcurrencyLimit<z.output<I>>
}

/** A task definition whose output is checked by a schema. */
export interface TaskDefinitionWithOutput<I extends z.ZodType, O extends z.ZodType>
  extends TaskDefinitionBase<I> {
  /** Schema of the output, checked after the handler returns. */
  readonly output: O
  readonly handler: TaskHandler<z.output<I>, z.input<O>>
}

/** A task definition whose output type is what the handler returns. */
export interface TaskDefinitionNoOutput<I extends z.ZodType, R> extends TaskDefinitionBase<I> {
  readonly output?: undefined
  readonly handler: TaskHandler<z.output<I>, R>
}

/**
 * A defined task: a name, schemas, a handler, a policy. Make signatures from it with `s()` and
 * `si()`; register it with `createApp({ tasks })`.
 *
 * `In` is what a sender passes, `Out` what a result reader gets.
 */
export class Task<In, Out> {
  readonly name: string
  readonly inputSchema: z.ZodType
  readonly outputSchema: z.ZodType | undefined
  readonly retry: { readonly attempts: number; readonly backoff?: RetryPolicy['backoff'] }
  readonly timeoutMs: number | undefined
  readonly queue: string | undefined
  readonly priority: number | undefined
  readonly resultTtlMs: number | undefined
  /** Starts per window, across every worker (see {@link RateLimit}). */
  readonly rateLimit: RateLimit<never> | undefined
  /** Running at once, across every worker (see {@link ConcurrencyLimit}). */
  readonly concurrency: ConcurrencyLimit<never> | undefined
  /** @internal */
  readonly handler: TaskHandler<unknown, unknown>

  /** @internal Use {@link defineTask}. */
  constructor(
    def: TaskDefinitionBase<z.ZodType> & {
      output?: z.ZodType | undefined
      handler: TaskHandler<never, unknown>
    },
  ) {
    this.name = def.name
    this.inputSchema = def.input
    this.outputSchema = def.output
    this.retry = def.retry
      ? parseOrThrow(retryPolicySchema, def.retry, `retry policy of task "${def.name}"`, 'retry')
      : { attempts: 1 }
    this.timeoutMs = def.timeoutMs
    this.queue = def.queue
    this.priority = def.priority
    this.resultTtlMs = def.resultTtlMs
    this.rateLimit =
      def.rateLimit === undefined
        ? undefined
        : (parseOrThrow(
            rateLimitSchema,
            def.rateLimit,
            `rate limit of task "${def.name}"`,
            'rateLimit',
          ) as RateLimit<never>)
    this.concurrency =
      def.concurrency === undefined
        ? undefined
        : (parseOrThrow(
            concurrencyLimitSchema,
            def.concurrency,
            `concurrency limit of task "${def.name}"`,
            'concurrency',
          ) as ConcurrencyLimit<never>)
    this.handler = def.handler as TaskHandler<unknown, unknown>
  }

  /**
   * A signature with bound input (`s(input)`), or one that takes the previous step's output in a
   * chain (`s()`).
   */
  s(): Signature<In, Out, false>
  s(input: In, options?: SignatureOptions): Signature<never, Out, true>
  s(input?: In, options?: SignatureOptions): Signature<never, Out, boolean> {
    // biome-ignore lint/complexity/noArguments: s() and s(undefined) differ: the second binds the input `undefined`
    if (arguments.length === 0) return new Signature(this.name, false, undefined, false, {}, [], this)
    requireOptions('s', options, SIGNATURE_OPTION_KEYS)
    return new Signature(this.name, true, input, false, options ?? {}, [], this)
  }

  /** An immutable signature: runs with `input` and ignores the previous step's output. */
  si(input: In, options?: SignatureOptions): Signature<unknown, Out, true> {
    requireOptions('si', options, SIGNATURE_OPTION_KEYS)
    return new Signature(this.name, true, input, true, options ?? {}, [], this)
  }

  /**
   * A partial signature: `bound` fixes some input fields, the previous chain step fills the rest
   * (Celery's and machinery's partial arguments, by field name). `partial(bound)`: the previous
   * output's fields fill the open ones; where both have a field, the bound one wins. A previous
   * output that is not an object gives nothing, so the merged input fails the task's schema.
   * `partial(bound, into)`: the whole previous output becomes field `into` (which `bound` must not
   * have). The bound fields are checked at send; the merged input by the worker before the
   * handler runs (a mismatch is dead-lettered as `invalid-input`). A chain step whose previous
   * output cannot fill the open fields does not compile (`PartialStepMismatch`).
   *
   * @example
   * ```ts
   * chain(add.s({ a: 2, b: 2 }), add.partial({ a: 5 }, 'b')) // add({ a: 5, b: 4 }) = 9
   * chain(measure.s(img), scale.partial({ factor: 2 })) // scale({ ...measured, factor: 2 })
   * ```
   */
  partial<B>(bound: PartialBound<In, B>): PartialSignature<OpenFields<In, B>, Out>
  partial<B, K extends Exclude<keyof In & string, keyof B>>(
    bound: PartialBound<In, B>,
    into: K,
  ): PartialSignature<In[K], Out>
  partial(bound: unknown, into?: string): Signature<never, unknown, false> {
    return makePartial(this.name, this, bound, into)
  }

  /** Validate input as at send; throws `ERR_VALIDATION` naming the bad field. */
  parseInput(input: unknown): unknown {
    return parseOrThrow(this.inputSchema, input, `input of task "${this.name}"`)
  }
}

const NAME = /^[A-Za-z0-9_.:-]{1,200}$/

/**
 * Define a task.
 *
 * @example
 * ```ts
 * const resize = defineTask({
 *   name: 'image.resize',
 *   input: z.object({ url: z.string().url(), width: z.number().int() }),
 *   output: z.object({ url: z.string() }),
 *   retry: { attempts: 5, backoff: { type: 'exponential', delayMs: 1000, maxDelayMs: 60_000, jitter: true } },
 *   timeoutMs: 30_000,
 *   handler: async (input, ctx) => ({ url: await doResize(input, ctx.signal) }),
 * })
 * ```
 */
export function defineTask<I extends z.ZodType, O extends z.ZodType>(
  def: TaskDefinitionWithOutput<I, O>,
): Task<z.input<I>, z.output<O>>
export function defineTask<I extends z.ZodType, R>(
  def: TaskDefinitionNoOutput<I, R>,
): Task<z.input<I>, Awaited<R>>
export function defineTask(
  def: TaskDefinitionBase<z.ZodType> & {
    output?: z.ZodType | undefined
    handler: TaskHandler<never, unknown>
  },
): Task<unknown, unknown> {
  if (typeof def !== 'object' || def === null) throw new TypeError('defineTask() needs a definition object')
  if (typeof def.name !== 'string' || !NAME.test(def.name)) {
    throw new InvalidOptionError(
      'name',
      `task names are 1-200 characters of [A-Za-z0-9_.:-], got ${JSON.stringify(def.name)}`,
    )
  }
  if (typeof def.handler !== 'function')
    throw new InvalidOptionError('handler', `task "${def.name}" needs a handler function`)
  if (def.input === undefined || typeof (def.input as { safeParse?: unknown }).safeParse !== 'function') {
    throw new InvalidOptionError('input', `task "${def.name}" needs a zod schema as input`)
  }
  if (def.timeoutMs !== undefined && !(Number.isInteger(def.timeoutMs) && def.timeoutMs > 0)) {
    throw new InvalidOptionError(
      'timeoutMs',
      `task "${def.name}": expected a positive integer, got ${def.timeoutMs}`,
    )
  }
  if (def.priority !== undefined && !(Number.isInteger(def.priority) && def.priority >= 0)) {
    throw new InvalidOptionError(
      'priority',
      `task "${def.name}": expected an integer >= 0, got ${def.priority}`,
    )
  }
  return new Task(def)
}

/** Any task (the top type), for registries. */
export type AnyTask = Task<never, unknown>
