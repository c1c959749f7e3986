import type { AsyncResult } from './async-result.js'
import type { DeadLetterReason, Delivery } from './broker.js'
import { CHUNK_TASK, chunkRunnerFor } from './canvas-chunks.js'
import { debounceReplaced } from './dedup.js'
import { decodeEnvelope, type Envelope } from './envelope.js'
import {
  CanceledError,
  DeliveryLostError,
  ErrandError,
  InvalidOptionError,
  RejectTaskError,
  RetryTaskError,
  type SerializedError,
  serializeError,
} from './errors.js'
import { WorkerEvents } from './events-runtime.js'
import { hasFlowControl } from './flow-control.js'
import { type Admission, type FlowGate, flowGateFor } from './flow-gate.js'
import { runInstrumented } from './instrumentation.js'
import { QueueConsumers } from './queue-consumers.js'
import { handOver } from './replace.js'
import { Replaced } from './replaced.js'
import type { TaskRecord } from './result-backend.js'
import { backoffDelay } from './retry.js'
import { parseOutput, RunningTask, runHandler, ShutdownError, unserializableOutput } from './running-task.js'
import type { Runtime } from './runtime.js'
import { checkSend, sendCanvases } from './send.js'
import { deliveryBudget, failUndecodable, recordLineage, startRun } from './start-run.js'
import type { AnyTask } from './task.js'
import { type RunFacts, telemetryMaker } from './task-telemetry.js'
import type { ResolvedWorkerOptions, TaskInfo } from './worker-options.js'

/**
 * Consumes queues and runs handlers. Made by `app.worker()`.
 *
 * Per delivery: decode (garbage → dead letter), find the task (unknown → dead letter), hop if it
 * is early, mark STARTED (a CANCELED task is dead-lettered here), validate input, run the handler
 * under a timeout and lease extension, then store the outcome, publish what comes next, and only
 * then ack. A failure retries (re-publish with backoff) or dead-letters and walks the workflow's
 * failure path.
 */
export class Worker {
  private consumers: QueueConsumers | undefined
  private readonly buffer: { readonly queue: string; readonly d: Delivery }[] = []
  /** Rate and concurrency limits; undefined when no task or queue of this app has any. */
  private gate: FlowGate | undefined
  private readonly running = new Set<RunningTask>()
  private active = 0
  private state: 'idle' | 'starting' | 'running' | 'stopping' | 'stopped' = 'idle'
  private leaseTimer: NodeJS.Timeout | undefined
  private cancelTimer: NodeJS.Timeout | undefined
  private drained: (() => void) | undefined
  private runtime: Runtime | undefined
  /** Lifecycle events (undefined with `events: false` or no event store); the hooks see the same points. */
  private emit: WorkerEvents | undefined

  /** @internal Use `app.worker()`. */
  constructor(
    private readonly connect: () => Promise<Runtime>,
    private readonly options: ResolvedWorkerOptions,
  ) {}

  /** Tasks running now. */
  get activeCount(): number {
    return this.active
  }

  /** Connect (if needed) and start consuming. Resolves once every queue's consumer is set up. */
  async start(): Promise<this> {
    if (this.state !== 'idle') throw new ErrandError('ERR_CLOSED', `worker cannot start: it is ${this.state}`)
    this.state = 'starting'
    const rt = await this.connect()
    this.runtime = rt
    if (rt.events.sink) this.emit = new WorkerEvents(rt.events.sink)
    const queues = this.options.queues ?? defaultQueues(rt)
    const prefetch = this.options.prefetch ?? this.options.concurrency
    const flow = hasFlowControl(rt.backend) ? rt.backend : undefined
    try {
      this.gate = flowGateFor(rt, flow)
    } catch (err) {
      this.state = 'stopped'
      throw err
    }
    this.consumers = new QueueConsumers(
      rt.broker,
      queues,
      (queue, d) => this.onDelivery(queue, d),
      { prefetch, leaseMs: this.options.leaseMs },
      flow && { store: flow, pollMs: this.options.pausePollMs },
      rt.logger,
      (queue) => this.returnBuffered(queue),
    )
    try {
      await this.consumers.start()
    } catch (err) {
      this.state = 'stopped'
      throw err
    }
    if (rt.broker.capabilities.leases) {
      this.leaseTimer = setInterval(
        () => this.extendLeases(),
        Math.max(50, Math.floor(this.options.leaseMs / 3)),
      )
      this.leaseTimer.unref()
    }
    if (rt.backend) {
      this.cancelTimer = setInterval(() => void this.pollCancellations(), this.options.cancelPollMs)
      this.cancelTimer.unref()
    }
    this.state = 'running'
    return this
  }

  /**
   * Stop gracefully: stop fetching, return deliveries not yet started to the queue at once, let
   * running tasks finish within `shutdownGraceMs`, then abort the rest and return them too.
   */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'idle') {
      this.state = 'stopped'
      return
    }
    if (this.state === 'stopping') return this.waitDrained()
    this.state = 'stopping'
    await this.consumers?.cancel()
    const unstarted = this.buffer.splice(0)
    await Promise.allSettled(unstarted.map((b) => b.d.nack()))
    const drained = this.waitDrained()
    let grace: NodeJS.Timeout | undefined
    const timedOut = new Promise<'timeout'>((resolve) => {
      grace = setTimeout(() => resolve('timeout'), this.options.shutdownGraceMs)
    })
    const outcome = await Promise.race([drained.then(() => 'drained' as const), timedOut])
    clearTimeout(grace)
    if (outcome === 'timeout') {
      const left = [...this.running]
      this.runtime?.logger.warn(
        `shutdown grace of ${this.options.shutdownGraceMs} ms ran out: ${left.length} running task(s) aborted and returned to the queue, ${this.active - left.length} still settling`,
      )
      for (const r of left) {
        r.abandoned = true
        r.abort(new ShutdownError())
      }
      await Promise.allSettled(left.map((r) => r.delivery.nack()))
      // Tasks whose handler had finished are storing their outcome and acking: closing the
      // connections under them would lose the ack and run them again. Bounded like the grace.
      const settled = await Promise.race([
        this.waitDrained().then(() => true),
        new Promise<false>((resolve) =>
          setTimeout(() => resolve(false), Math.max(1000, this.options.shutdownGraceMs)).unref(),
        ),
      ])
      if (!settled)
        this.runtime?.logger.warn(
          'some outcomes were still being stored at shutdown; those tasks may run again',
        )
    }
    clearInterval(this.leaseTimer)
    clearInterval(this.cancelTimer)
    this.gate?.close()
    this.state = 'stopped'
  }

  private waitDrained(): Promise<void> {
    if (this.active === 0) return Promise.resolve()
    return new Promise((resolve) => {
      const prev = this.drained
      this.drained = () => {
        prev?.()
        resolve()
      }
    })
  }

  private onDelivery(queue: string, d: Delivery): void {
    if (this.state === 'stopping' || this.state === 'stopped') {
      d.nack().catch((err) =>
        this.runtime?.logger.warn('could not return a delivery at shutdown', { error: String(err) }),
      )
      return
    }
    if (this.active < this.options.concurrency) this.launch(d)
    else this.buffer.push({ queue, d })
  }

  /** A queue was paused: what was fetched from it but not started goes back at once. */
  private returnBuffered(queue: string): void {
    for (let i = this.buffer.length - 1; i >= 0; i--) {
      const b = this.buffer[i]
      if (b?.queue !== queue) continue
      this.buffer.splice(i, 1)
      b.d
        .nack()
        .catch((err) =>
          this.runtime?.logger.warn('could not return a delivery of a paused queue', { error: String(err) }),
        )
    }
  }

  private launch(d: Delivery): void {
    this.active++
    this.process(d)
      .catch(async (err) => {
        this.runtime?.logger.error('could not settle a delivery; returning it to the queue', {
          error: String(err),
        })
        await d.nack().catch(() => {})
      })
      .finally(() => {
        this.active--
        const next = this.state === 'running' || this.state === 'starting' ? this.buffer.shift() : undefined
        if (next) this.launch(next.d)
        else if (this.active === 0 && this.drained) {
          const done = this.drained
          this.drained = undefined
          done()
        }
      })
  }

  private async process(d: Delivery): Promise<void> {
    const rt = this.runtime as Runtime
    let env: Envelope
    try {
      env = decodeEnvelope(d.body, rt.maxEnvelopeBytes)
    } catch (err) {
      return this.deadLetter(d, {}, 'undecodable', await failUndecodable(rt.backend, err, rt.resultTtlMs))
    }
    const info: TaskInfo = {
      id: env.id,
      task: env.task,
      queue: env.queue,
      attempt: env.attempt + d.attempt - 1,
    }
    const task =
      rt.tasks.get(env.task) ?? (env.task === CHUNK_TASK ? chunkRunnerFor(env.input, rt.tasks) : undefined)
    if (!task) {
      const error = serializeError(
        new ErrandError('ERR_UNKNOWN_TASK', `no task named "${env.task}" is registered on this worker`),
      )
      return this.finishFailed(d, env, info, 'unregistered', error)
    }
    const now = Date.now()
    if (env.eta !== undefined && env.eta > now) {
      // Early (a delay longer than the broker allows, or clock skew): hop again, never run early.
      await rt.dispatcher.publish([env])
      return d.ack()
    }
    if (env.expiresAt !== undefined && env.expiresAt < now) {
      return this.finishFailed(
        d,
        env,
        info,
        'expired',
        serializeError(new ErrandError('ERR_TIMEOUT', `task ${env.id} expired before it ran`)),
      )
    }
    // A debounced send that a later one replaced: the later one carries the task now.
    if (env.debounce !== undefined && (await debounceReplaced(rt.backend, env))) return d.ack()
    let input: unknown
    try {
      input = task.parseInput(env.input)
    } catch (err) {
      return this.finishFailed(d, env, info, 'invalid-input', serializeError(err))
    }
    let release: (() => Promise<void>) | undefined
    if (this.gate?.applies(task, env.queue)) {
      let admission: Admission
      try {
        admission = await this.gate.admit(task, env, input)
      } catch (err) {
        // A key function that fails on this input fails the same way every time.
        if (!(err instanceof InvalidOptionError)) throw err
        return this.finishFailed(d, env, info, 'invalid-input', serializeError(err))
      }
      if (!admission.admitted) return this.defer(d, env, admission.delayMs)
      release = admission.release
    }
    try {
      return await this.run(d, env, info, task, input, now)
    } finally {
      await release?.()
    }
  }

  /**
   * A limit has no room: the task goes back to its queue to come again after `delayMs`, as the
   * same attempt (waiting spends no attempt and no redelivery), then this delivery is acked.
   */
  private async defer(d: Delivery, env: Envelope, delayMs: number): Promise<void> {
    const rt = this.runtime as Runtime
    await rt.dispatcher.publish([{ ...env, eta: Date.now() + delayMs, deferrals: (env.deferrals ?? 0) + 1 }])
    await d.ack()
  }

  /** Start, run the handler, settle: the part of `process` after the gates. */
  private async run(
    d: Delivery,
    env: Envelope,
    info: TaskInfo,
    task: AnyTask,
    input: unknown,
    now: number,
  ): Promise<void> {
    const rt = this.runtime as Runtime
    const { maxRedeliveries } = this.options
    const ttlMs = task.resultTtlMs ?? rt.resultTtlMs
    let started: TaskRecord | undefined
    const decision =
      rt.backend && this.options.trackStarted
        ? await startRun(rt.backend, d, env, info, ttlMs, maxRedeliveries, now, (r) => {
            started = r
          })
        : deliveryBudget(d, maxRedeliveries)
    if (decision === 'canceled') return this.finishCanceled(d, env, info)
    if (decision !== 'run') return this.finishFailed(d, env, info, 'exhausted', serializeError(decision))
    this.emit?.started(env, info.attempt)
    if (this.options.hooks?.onStart) await this.hook('onStart', info)
    const running = new RunningTask(d, env, now)
    const lost = d.lost
    const onLost = lost
      ? () => {
          running.abandoned = true
          running.abort(
            lost.reason instanceof Error ? lost.reason : new DeliveryLostError(String(lost.reason)),
          )
        }
      : undefined
    if (lost && onLost) {
      if (lost.aborted) onLost()
      else lost.addEventListener('abort', onLost, { once: true })
    }
    running.makeTelemetry = telemetryMaker(rt, env, info.attempt, started, ttlMs, this.emit)
    running.sendChild = async (canvas, options) => {
      checkSend([canvas], options, rt.tasks)
      const lineage = { root: env.root ?? env.id, parent: env.id, headers: env.headers }
      const [result] = await sendCanvases(rt, [canvas], options, { localResults: false }, lineage)
      return result as AsyncResult<unknown>
    }
    this.running.add(running)
    let output: unknown
    let failure: unknown
    let ok = false
    try {
      const instrumentation = rt.dispatcher.instrumentation
      if (instrumentation.length === 0) {
        output = await runHandler(task, input, env, info.attempt, running, rt.logger, this.options.leaseMs)
        if (task.outputSchema) output = parseOutput(task, output)
      } else {
        output = await runInstrumented(instrumentation, env, info.attempt, task.retry.attempts, async () => {
          const out = await runHandler(
            task,
            input,
            env,
            info.attempt,
            running,
            rt.logger,
            this.options.leaseMs,
          )
          return task.outputSchema ? parseOutput(task, out) : out
        })
      }
      ok = true
    } catch (err) {
      failure = err
    } finally {
      this.running.delete(running)
      if (onLost) lost?.removeEventListener('abort', onLost)
    }
    const recorder = running.usedTelemetry
    // Awaited only when the handler reported progress or logged: the usual path adds no await.
    const run: RunFacts = { startedAt: now, fields: recorder ? await recorder.finish() : undefined }
    if (running.abandoned) return
    if (ok) {
      // `return ctx.replace(canvas)`: the canvas takes the task's place and stores its result.
      if (output instanceof Replaced) {
        const refused = await handOver(rt, env, output)
        if (refused) return this.finishFailed(d, env, info, 'rejected', refused, run)
        return d.ack()
      }
      // Checked before anything is stored or sent on: an output JSON cannot carry fails the same
      // way every time, so it is a final failure (no retry, no redelivery: the handler's side
      // effects are not repeated), like an output that does not match its schema.
      const unserializable = unserializableOutput(task, output)
      if (unserializable)
        return this.finishFailed(d, env, info, 'rejected', serializeError(unserializable), run)
      return this.finishSucceeded(d, env, info, task, output, run)
    }
    if (running.reason instanceof CanceledError) return this.finishCanceled(d, env, info)
    return this.finishAttemptFailed(d, env, info, task, failure, run)
  }

  private async finishSucceeded(
    d: Delivery,
    env: Envelope,
    info: TaskInfo,
    task: AnyTask,
    output: unknown,
    run: RunFacts,
  ): Promise<void> {
    const rt = this.runtime as Runtime
    const record: TaskRecord = {
      id: env.id,
      state: 'SUCCESS',
      task: env.task,
      result: output,
      attempts: info.attempt,
      createdAt: env.createdAt,
      ...recordLineage(env),
      startedAt: run.startedAt,
      finishedAt: Date.now(),
      ...run.fields,
    }
    const options = { ttlMs: task.resultTtlMs ?? rt.resultTtlMs }
    if (rt.backend && d.ackWithRecord) {
      // One store: the next step first (the ack must follow it), then the outcome and the ack
      // in one step.
      await rt.dispatcher.succeeded(env, output)
      if ((await d.ackWithRecord(rt.backend, record, options)) === undefined) {
        await rt.backend.setState(record, options)
        await d.ack()
      }
    } else {
      // The outcome and the next step are written side by side; the ack waits for both.
      await Promise.all([rt.backend?.setState(record, options), rt.dispatcher.succeeded(env, output)])
      await d.ack()
    }
    this.emit?.succeeded(env, info.attempt, run.startedAt)
    if (this.options.hooks?.onSuccess) await this.hook('onSuccess', info, output)
  }

  private async finishAttemptFailed(
    d: Delivery,
    env: Envelope,
    info: TaskInfo,
    task: AnyTask,
    err: unknown,
    run: RunFacts,
  ): Promise<void> {
    const rt = this.runtime as Runtime
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
    return this.finishFailed(d, env, info, rejected ? 'rejected' : 'exhausted', error, run)
  }

  /** A final failure: store FAILURE, walk the workflow's failure path, dead-letter the message. */
  private async finishFailed(
    d: Delivery,
    env: Envelope,
    info: TaskInfo,
    reason: DeadLetterReason,
    error: SerializedError,
    run?: RunFacts,
  ): Promise<void> {
    const rt = this.runtime as Runtime
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

  private async finishCanceled(d: Delivery, env: Envelope, info: TaskInfo): Promise<void> {
    const error = serializeError(new CanceledError(env.id))
    await (this.runtime as Runtime).dispatcher.failed(env, error)
    await this.deadLetter(d, info, 'canceled', error)
    this.emit?.canceled(env, info.attempt)
    this.emit?.deadLettered(env, info.attempt, 'canceled', error)
  }

  private async deadLetter(
    d: Delivery,
    info: Partial<TaskInfo>,
    reason: DeadLetterReason,
    error: SerializedError,
  ): Promise<void> {
    await d.deadLetter({ reason, error })
    this.runtime?.logger.warn(`dead-lettered a message: ${reason}`, {
      task: info.task,
      id: info.id,
      error: error.message,
    })
    await this.hook('onDeadLetter', info, reason, error)
  }

  private async hook<K extends keyof NonNullable<ResolvedWorkerOptions['hooks']>>(
    name: K,
    ...args: Parameters<NonNullable<NonNullable<ResolvedWorkerOptions['hooks']>[K]>>
  ): Promise<void> {
    const fn = this.options.hooks?.[name] as ((...a: unknown[]) => unknown) | undefined
    if (!fn) return
    try {
      await fn(...args)
    } catch (err) {
      this.runtime?.logger.error(`hook ${name} threw`, { error: String(err) })
    }
  }

  private extendLeases(): void {
    const now = Date.now()
    const every = this.options.leaseMs / 3
    for (const r of this.running) {
      if (now - r.lastExtendedAt < every || !r.delivery.extend) continue
      r.lastExtendedAt = now
      r.delivery.extend(this.options.leaseMs).catch((err) => {
        this.runtime?.logger.warn('could not extend a lease', { id: r.envelope.id, error: String(err) })
      })
    }
  }

  private async pollCancellations(): Promise<void> {
    const rt = this.runtime
    if (!rt?.backend || this.running.size === 0) return
    const now = Date.now()
    const candidates = [...this.running].filter((r) => now - r.startedAt >= this.options.cancelPollMs / 2)
    if (candidates.length === 0) return
    try {
      const records = await rt.backend.getStates(candidates.map((r) => r.envelope.id))
      records.forEach((rec, i) => {
        if (rec?.state === 'CANCELED') candidates[i]?.abort(new CanceledError(rec.id))
      })
    } catch (err) {
      rt.logger.warn('could not check for cancellations', { error: String(err) })
    }
  }
}

function defaultQueues(rt: Runtime): string[] {
  const queues = new Set<string>([rt.defaultQueue])
  for (const t of rt.tasks.values()) if (t.queue) queues.add(t.queue)
  return [...queues]
}
