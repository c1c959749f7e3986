import type { z } from 'zod'
import { type AppOptions, appOptionsSchema } from './app-options.js'
import { type AsyncResult, TaskResult } from './async-result.js'
import type { DeadLetter, ListDeadLettersOptions, QueueStats } from './broker.js'
import type { AnyCanvas, Canvas, OutputOf } from './canvas.js'
import { ClosedError, InvalidOptionError, NotSupportedError } from './errors.js'
import type { EventsOptions, TaskEvent } from './events.js'
import { openEvents, recentEvents } from './events-runtime.js'
import { EVENT_CLOSE_FLUSH_MS } from './events-sink.js'
import type { EventStream } from './events-stream.js'
import { type FlowControlStore, hasFlowControl } from './flow-control.js'
import { consoleLogger, type Logger, maskingLogger } from './logger.js'
import { openRuntime, type Runtime } from './runtime.js'
import {
  type Schedule,
  type ScheduleInfo,
  type ScheduleOptions,
  Scheduler,
  type ScheduleSpec,
} from './schedule.js'
import { checkSend, type SendOptions, sendCanvases } from './send.js'
import { validateCanvas } from './send-plan.js'
import type { AnyTask } from './task.js'
import { parseOptions } from './validation.js'
import { Worker } from './worker.js'
import { type WorkerOptions, workerOptionsSchema } from './worker-options.js'

export { type AppOptions, appOptionsSchema } from './app-options.js'

export type { SendOptions } from './send.js'
export type { TransactionalBroker } from './transactional-broker.js'

/**
 * An Errand app: the tasks, a broker and optionally a result backend. Sends work, starts workers
 * and schedulers, and reads results. Connects on first use (or `connect()`), once.
 */
export class App {
  private readonly options: z.output<typeof appOptionsSchema>
  private readonly tasks = new Map<string, AnyTask>()
  private readonly logger: Logger
  private runtime: Promise<Runtime> | undefined
  private closed: Promise<void> | undefined
  private readonly workers = new Set<Worker>()
  private readonly stoppers = new Set<() => Promise<void>>()
  /** Schedules armed by this app, for `schedules()`. */
  private readonly armed = new Map<Schedule, () => ScheduleInfo>()
  /** What a `get()` timeout message can say about this app's setup (filled in at connect). */
  private readonly waitHints: { localResults: boolean } = { localResults: false }

  /** @internal Use {@link createApp}. */
  constructor(options: AppOptions) {
    this.options = parseOptions(appOptionsSchema, options, '')
    for (const t of this.options.tasks) {
      if (this.tasks.has(t.name) && this.tasks.get(t.name) !== t) {
        throw new InvalidOptionError('tasks', `two different tasks are named "${t.name}"`)
      }
      this.tasks.set(t.name, t)
    }
    this.logger = maskingLogger(this.options.logger ?? consoleLogger)
  }

  /** Connect the broker and backend (once; later calls share the first). */
  connect(): Promise<Runtime> {
    if (this.closed) return Promise.reject(new ClosedError('app is closed'))
    this.runtime ??= openRuntime(this.options, this.tasks, this.logger, this.waitHints).catch((err) => {
      this.runtime = undefined
      throw err
    })
    return this.runtime
  }

  /**
   * Follow task events (sent, started, progress, succeeded, failed, dead-lettered, canceled) of
   * every producer and worker on this app's result backend. Resolves once the subscription is
   * live: every event published after that reaches it. Without a backend, only this app's own
   * events (in process); a backend without the events capability is refused (`ERR_NOT_SUPPORTED`).
   * A reader that falls behind `bufferSize` loses the oldest events (see {@link EventStream}).
   *
   * @example
   * ```ts
   * for await (const e of await app.events({ types: ['failed'], signal })) console.log(e)
   * ```
   */
  async events(options: EventsOptions = {}): Promise<EventStream> {
    const rt = await this.connect()
    return openEvents(rt.events, options, (stream) => this.onClose(() => stream.close()))
  }

  /**
   * The last `limit` events of `queue` (default 100), oldest first, as the backend retains them
   * (memory: 1000 per queue; Redis: a capped stream per queue; Postgres: a trimmed table).
   */
  async recentEvents(queue: string, options: { readonly limit?: number } = {}): Promise<TaskEvent[]> {
    const rt = await this.connect()
    return recentEvents(rt.events, queue, options.limit ?? 100)
  }

  /**
   * Send a task or a whole canvas. Bound inputs are validated here (`ERR_VALIDATION` names the
   * bad field); the promise resolves once the broker has the message(s).
   *
   * @example
   * ```ts
   * const r = await app.send(resize.s({ url, width: 200 }))
   * console.log(await r.get({ timeoutMs: 10_000 }))
   * ```
   */
  async send<C extends Canvas<never, unknown, true>>(
    canvas: C,
    options: SendOptions = {},
  ): Promise<AsyncResult<OutputOf<C>>> {
    const [result] = await this.sendAll([canvas], options)
    return result as AsyncResult<OutputOf<C>>
  }

  /** Send many signatures or canvases in as few broker calls as possible (one per queue and chunk). */
  async sendMany<C extends Canvas<never, unknown, true>>(
    canvases: readonly C[],
    options: Omit<SendOptions, 'dedupKey' | 'dedupTtlMs'> = {},
  ): Promise<AsyncResult<OutputOf<C>>[]> {
    return (await this.sendAll(canvases, options)) as AsyncResult<OutputOf<C>>[]
  }

  private async sendAll(
    canvases: readonly AnyCanvas[],
    options: SendOptions,
  ): Promise<AsyncResult<unknown>[]> {
    checkSend(canvases, options, this.tasks)
    const rt = await this.connect()
    return sendCanvases(rt, canvases, options, this.waitHints)
  }

  /** A handle on a task id sent earlier (by this or another process). */
  result<Out = unknown>(id: string): AsyncResult<Out> {
    return new TaskResult<Out>(id, async () => (await this.connect()).backend, [], {
      explain: () => this.waitHints,
    })
  }

  /**
   * Cancel a task: a queued one is dead-lettered as `canceled` when a worker reaches it; a running
   * one has its `ctx.signal` aborted within about a second. A canceled chord member fails its chord.
   */
  async cancel(id: string): Promise<void> {
    const rt = await this.connect()
    if (!rt.backend)
      throw new NotSupportedError('cancel() needs a result backend: pass `backend` to createApp()')
    await rt.backend.setState({ id, state: 'CANCELED', finishedAt: Date.now() }, { ttlMs: rt.resultTtlMs })
  }

  /**
   * Run `canvas` on a schedule from this process: a cron pattern (`'0 3 * * *'`, with
   * `timezone`) or `{ everyMs }`. Any number of processes may run the same schedule: each tick is
   * sent once (claimed in the backend). Resolves once it is armed; `app.close()` stops it.
   *
   * @example
   * ```ts
   * await app.schedule('nightly-report', '0 3 * * *', report.s({ kind: 'daily' }), { timezone: 'Europe/Paris' })
   * ```
   */
  async schedule(
    name: string,
    when: ScheduleSpec,
    canvas: Canvas<never, unknown, true>,
    options: ScheduleOptions = {},
  ): Promise<Schedule> {
    if (this.closed) throw new ClosedError('app is closed')
    validateCanvas(canvas, this.tasks)
    const scheduler = new Scheduler(
      name,
      when,
      canvas,
      options,
      async () => (await this.connect()).backend,
      async (c) => {
        await this.send(c)
      },
      this.logger,
    )
    const unregister = this.onClose(() => scheduler.stop())
    await scheduler.start()
    const schedule: Schedule = {
      name,
      nextTick: () => scheduler.nextTick(),
      stop: async () => {
        unregister()
        this.armed.delete(schedule)
        await scheduler.stop()
      },
    }
    const spec = typeof when === 'string' ? when : `every ${when.everyMs} ms`
    const timezone = typeof when === 'string' ? (options.timezone ?? 'UTC') : undefined
    this.armed.set(schedule, () => ({ name, when: spec, timezone, nextTick: scheduler.nextTick() }))
    return schedule
  }

  /**
   * The schedules this app has armed in this process (`app.schedule()`), by name, with their next
   * tick. Schedules live in the processes that arm them (each tick is claimed in the backend, so
   * several processes may arm the same one): a tool lists them by loading the app module that arms
   * them (`errand schedules --app`, the dashboard mounted in the app's process).
   */
  schedules(): ScheduleInfo[] {
    return [...this.armed.values()].map((info) => info()).sort((a, b) => a.name.localeCompare(b.name))
  }

  /**
   * Start a worker and close the app gracefully on SIGTERM or SIGINT (running tasks get
   * `shutdownGraceMs` to finish, the rest go back to the queue, connections close). A second
   * signal exits at once. For worker processes.
   *
   * @example
   * ```ts
   * await app.runWorker({ concurrency: 16 })
   * ```
   */
  async runWorker(
    options: WorkerOptions & { readonly signals?: readonly NodeJS.Signals[] } = {},
  ): Promise<Worker> {
    const { signals = ['SIGTERM', 'SIGINT'], ...workerOptions } = options
    const worker = await this.worker(workerOptions).start()
    let closing = false
    const onSignal = (signal: NodeJS.Signals) => {
      if (closing) {
        this.logger.warn(`${signal} again: exiting without waiting`)
        process.exit(1)
      }
      closing = true
      this.logger.info(`${signal}: stopping the worker gracefully`)
      this.close().then(
        () => {
          for (const s of signals) process.off(s, onSignal)
        },
        (err) => this.logger.error('could not close cleanly', { error: String(err) }),
      )
    }
    for (const s of signals) process.on(s, onSignal)
    this.onClose(async () => {
      for (const s of signals) process.off(s, onSignal)
    })
    return worker
  }

  /** A worker for this app's tasks. Call `start()` on it. */
  worker(options: WorkerOptions = {}): Worker {
    if (this.closed) throw new ClosedError('app is closed')
    const { hooks: _validated, ...resolved } = parseOptions(workerOptionsSchema, options, 'worker')
    const worker = new Worker(() => this.connect(), {
      ...resolved,
      ...(options.hooks && { hooks: options.hooks }),
    })
    this.workers.add(worker)
    return worker
  }

  /** @internal Register something to stop before the connections close (schedulers). */
  onClose(stop: () => Promise<void>): () => void {
    this.stoppers.add(stop)
    return () => this.stoppers.delete(stop)
  }

  /** Counts for a queue. */
  async stats(queue: string): Promise<QueueStats> {
    return (await this.connect()).broker.stats(queue)
  }

  /** The task registered under `name` (tools such as `errand send` look tasks up by name). */
  task(name: string): AnyTask | undefined {
    return this.tasks.get(name)
  }

  /**
   * The queues worth showing an operator, sorted: those the broker reports holding anything (where
   * it can list them, see `Broker.listQueues`), the queues of this app's tasks, and the default queue.
   */
  async queues(): Promise<string[]> {
    const { broker } = await this.connect()
    const names = new Set<string>([this.options.defaultQueue])
    for (const t of this.tasks.values()) if (t.queue !== undefined) names.add(t.queue)
    for (const q of (await broker.listQueues?.()) ?? []) names.add(q)
    return [...names].sort()
  }

  /**
   * Pause `queue` for every worker on this app's result backend: within `pausePollMs` (default
   * 500 ms) each worker stops taking new messages from it; tasks already running finish, and what
   * a worker had fetched but not started goes back to the queue. Sends still queue messages. Needs
   * a backend with flow control (memory, Redis, PostgreSQL, SQLite): else `ERR_NOT_SUPPORTED`.
   */
  async pause(queue: string): Promise<void> {
    await (await this.flowControl('pause()')).setPaused(checkQueueName(queue), true)
  }

  /** Undo {@link App.pause}: workers take messages from `queue` again within `pausePollMs`. */
  async resume(queue: string): Promise<void> {
    await (await this.flowControl('resume()')).setPaused(checkQueueName(queue), false)
  }

  /** The paused queues, sorted. */
  async pausedQueues(): Promise<string[]> {
    return (await this.flowControl('pausedQueues()')).pausedQueues()
  }

  private async flowControl(what: string): Promise<FlowControlStore> {
    const { backend } = await this.connect()
    if (hasFlowControl(backend)) return backend
    throw new NotSupportedError(
      `${what} needs a result backend with flow control (memory://, redis://, postgres://, sqlite://)${backend ? `; "${backend.name}" has none` : ': pass `backend` to createApp()'}`,
    )
  }

  /** Remove ready and delayed messages of a queue. */
  async purge(queue: string): Promise<number> {
    return (await this.connect()).broker.purge(queue)
  }

  /** Dead letters of a queue: list, requeue, purge. */
  deadLetters(queue: string): DeadLetters {
    return {
      list: async (options?: ListDeadLettersOptions) =>
        (await this.connect()).broker.listDeadLetters(queue, options),
      requeue: async (ids?: readonly string[]) =>
        (await this.connect()).broker.requeueDeadLetters(queue, ids),
      purge: async (ids?: readonly string[]) => (await this.connect()).broker.purgeDeadLetters(queue, ids),
    }
  }

  /** Stop workers and schedulers of this app, then close the broker and backend. Idempotent. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      await Promise.allSettled([...this.stoppers].map((s) => s()))
      await Promise.allSettled([...this.workers].map((w) => w.stop()))
      const rt = await this.runtime?.catch(() => undefined)
      // Events this app emitted go out before the backend closes, within a bound: a store that is
      // down must not hold the shutdown (the Postgres outage test caught close() hanging here).
      await rt?.events.sink?.flush(EVENT_CLOSE_FLUSH_MS)
      if (rt) await Promise.allSettled([rt.broker.close(), rt.backend?.close()])
    })()
    return this.closed
  }
}

/** Dead-letter admin for one queue. */
export interface DeadLetters {
  list(options?: ListDeadLettersOptions): Promise<DeadLetter[]>
  /** Put back on the queue: all, or the given ids. */
  requeue(ids?: readonly string[]): Promise<number>
  /** Delete: all, or the given ids. */
  purge(ids?: readonly string[]): Promise<number>
}

/**
 * Create an app.
 *
 * @example
 * ```ts
 * const app = createApp({ broker: process.env.ERRAND_BROKER_URL ?? 'memory://', backend: 'memory://', tasks: [resize] })
 * const r = await app.send(resize.s({ url, width: 200 }))
 * await app.worker({ concurrency: 16 }).start()
 * console.log(await r.get({ timeoutMs: 10_000 }))
 * ```
 */
export function createApp(options: AppOptions): App {
  return new App(options)
}

function checkQueueName(queue: unknown): string {
  if (typeof queue !== 'string' || queue.length === 0 || queue.length > 200) {
    throw new InvalidOptionError(
      'queue',
      `expected a queue name of 1 to 200 characters, got ${typeof queue === 'string' ? `${queue.length} characters` : typeof queue}`,
    )
  }
  return queue
}
