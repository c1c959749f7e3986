import type { Delivery } from './broker.js'
import { CanceledError, ErrandError } from './errors.js'
import { WorkerEvents } from './events-runtime.js'
import { hasFlowControl } from './flow-control.js'
import { type FlowGate, flowGateFor } from './flow-gate.js'
import type { Logger } from './logger.js'
import { QueueConsumers } from './queue-consumers.js'
import type { ResultBackend } from './result-backend.js'
import { DeliveryRunner } from './run-delivery.js'
import type { RunningTask } from './running-task.js'
import { ShutdownError } from './running-task.js'
import type { Runtime } from './runtime.js'
import type { ResolvedWorkerOptions } from './worker-options.js'

/**
 * Consumes queues and runs handlers. Made by `app.worker()`.
 *
 * Per delivery: decode (garbage → dead letter), find the task (unknown → dead letter), hop if it
 * is early, mark STARTED (a CANCELED task is dead-lettered here), validate input, run the handler
 * under a timeout and lease extension, then store the outcome, publish what comes next, and only
 * then ack. A failure retries (re-publish with backoff) or dead-letters and walks the workflow's
 * failure path.
 *
 * This file is the lifecycle (start, stop with its shutdown grace, consumers, the lease and
 * cancellation timers, the launch queue); running one delivery is `DeliveryRunner`
 * (run-delivery.ts), made at start with the connected runtime, and how a delivery ends is
 * `TaskOutcomes` (task-outcome.ts).
 */
export class Worker {
  private consumers: QueueConsumers | undefined
  /** Fetched, not started yet; `extendedAt`: when its lease was last asked for (or it arrived). */
  private readonly buffer: { readonly queue: string; readonly d: Delivery; extendedAt: number }[] = []
  private readonly running = new Set<RunningTask>()
  /** Deliveries launched whose handler has not finished yet (at most `concurrency`). */
  private active = 0
  /**
   * Deliveries launched and not yet at their end: `active` plus those whose handler finished and
   * whose outcome is being stored and settled (at most `concurrency` of those too).
   */
  private launched = 0
  private state: 'idle' | 'starting' | 'running' | 'stopping' | 'stopped' = 'idle'
  private leaseTimer: NodeJS.Timeout | undefined
  private cancelTimer: NodeJS.Timeout | undefined
  /** Rate and concurrency limits; undefined when no task or queue of this app has any. */
  private gate: FlowGate | undefined
  private drained: (() => void) | undefined
  /** The app's logger, once started. */
  private logger: Logger | undefined

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
    this.logger = rt.logger
    const emit = rt.events.sink ? new WorkerEvents(rt.events.sink) : undefined
    const queues = this.options.queues ?? defaultQueues(rt)
    // Twice the concurrency by default: when a handler finishes, the next delivery is already
    // here and starts while the finished one's outcome is written and settled.
    const prefetch = this.options.prefetch ?? 2 * this.options.concurrency
    const flow = hasFlowControl(rt.backend) ? rt.backend : undefined
    let runner: DeliveryRunner
    try {
      this.gate = flowGateFor(rt, flow)
      runner = new DeliveryRunner(rt, this.options, this.gate, emit, this.running)
    } catch (err) {
      this.state = 'stopped'
      throw err
    }
    this.consumers = new QueueConsumers(
      rt.broker,
      queues,
      (queue, d) => this.onDelivery(runner, queue, d),
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
    const backend = rt.backend
    if (backend) {
      this.cancelTimer = setInterval(
        () => void this.pollCancellations(backend, rt.logger),
        this.options.cancelPollMs,
      )
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
      this.logger?.warn(
        `shutdown grace of ${this.options.shutdownGraceMs} ms ran out: ${left.length} running task(s) aborted and returned to the queue, ${this.launched - left.length} still settling`,
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
        this.logger?.warn('some outcomes were still being stored at shutdown; those tasks may run again')
    }
    clearInterval(this.leaseTimer)
    clearInterval(this.cancelTimer)
    this.gate?.close()
    this.state = 'stopped'
  }

  private waitDrained(): Promise<void> {
    if (this.launched === 0) return Promise.resolve()
    return new Promise((resolve) => {
      const prev = this.drained
      this.drained = () => {
        prev?.()
        resolve()
      }
    })
  }

  private onDelivery(runner: DeliveryRunner, queue: string, d: Delivery): void {
    if (this.state === 'stopping' || this.state === 'stopped') {
      d.nack().catch((err) =>
        this.logger?.warn('could not return a delivery at shutdown', { error: String(err) }),
      )
      return
    }
    if (this.hasRoom()) this.launch(runner, d)
    else this.buffer.push({ queue, d, extendedAt: Date.now() })
  }

  /**
   * Room to start one more: fewer than `concurrency` handlers running, and fewer than
   * `concurrency` deliveries whose outcomes are still being written (a slow result backend
   * must not let finished work pile up without bound).
   */
  private hasRoom(): boolean {
    const { concurrency } = this.options
    return this.active < concurrency && this.launched - this.active < concurrency
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
          this.logger?.warn('could not return a delivery of a paused queue', { error: String(err) }),
        )
    }
  }

  /**
   * Start one delivery. Its handler slot is given back when the handler finishes (`handlerDone`),
   * so the next delivery starts while this one's outcome is stored and settled: with a result
   * backend the write no longer sits between one task and the next.
   */
  private launch(runner: DeliveryRunner, d: Delivery): void {
    this.active++
    this.launched++
    let handlerRan = false
    const handlerDone = () => {
      if (handlerRan) return
      handlerRan = true
      this.active--
      this.startNext(runner)
    }
    runner.process(d, handlerDone).then(
      () => this.finished(runner, handlerDone),
      async (err) => {
        try {
          this.logger?.error('could not settle a delivery; returning it to the queue', {
            error: String(err),
          })
          await d.nack().catch(() => {})
        } finally {
          this.finished(runner, handlerDone)
        }
      },
    )
  }

  /** Start buffered deliveries while there is room. */
  private startNext(runner: DeliveryRunner): void {
    if (this.state !== 'running' && this.state !== 'starting') return
    while (this.buffer.length > 0 && this.hasRoom()) {
      const next = this.buffer.shift()
      if (next) this.launch(runner, next.d)
    }
  }

  /** A launched delivery is done: start the next one waiting, or tell a stop that all are done. */
  private finished(runner: DeliveryRunner, handlerDone: () => void): void {
    this.launched--
    handlerDone()
    this.startNext(runner)
    if (this.launched === 0 && this.drained) {
      const done = this.drained
      this.drained = undefined
      done()
    }
  }

  private extendLeases(): void {
    const now = Date.now()
    const every = this.options.leaseMs / 3
    for (const r of this.running) {
      if (now - r.lastExtendedAt < every || !r.delivery.extend) continue
      r.lastExtendedAt = now
      r.delivery.extend(this.options.leaseMs).catch((err) => {
        this.logger?.warn('could not extend a lease', { id: r.envelope.id, error: String(err) })
      })
    }
    // Fetched and waiting for a handler slot (prefetch above concurrency): their leases must not
    // run out behind long tasks either, or they would be delivered again elsewhere.
    for (const b of this.buffer) {
      if (now - b.extendedAt < every || !b.d.extend) continue
      b.extendedAt = now
      b.d.extend(this.options.leaseMs).catch((err) => {
        this.logger?.warn('could not extend the lease of a fetched task', { error: String(err) })
      })
    }
  }

  private async pollCancellations(backend: ResultBackend, logger: Logger): Promise<void> {
    if (this.running.size === 0) return
    const now = Date.now()
    const candidates = [...this.running].filter((r) => now - r.startedAt >= this.options.cancelPollMs / 2)
    if (candidates.length === 0) return
    try {
      const records = await backend.getStates(candidates.map((r) => r.envelope.id))
      records.forEach((rec, i) => {
        if (rec?.state === 'CANCELED') candidates[i]?.abort(new CanceledError(rec.id))
      })
    } catch (err) {
      logger.warn('could not check for cancellations', { error: String(err) })
    }
  }
}

function defaultQueues(rt: Runtime): string[] {
  const queues = new Set<string>([rt.defaultQueue])
  for (const t of rt.tasks.values()) if (t.queue) queues.add(t.queue)
  return [...queues]
}
