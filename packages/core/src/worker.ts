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
  private readonly buffer: { readonly queue: string; readonly d: Delivery }[] = []
  private readonly running = new Set<RunningTask>()
  private active = 0
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
    const prefetch = this.options.prefetch ?? this.options.concurrency
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
        this.logger?.warn('some outcomes were still being stored at shutdown; those tasks may run again')
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

  private onDelivery(runner: DeliveryRunner, queue: string, d: Delivery): void {
    if (this.state === 'stopping' || this.state === 'stopped') {
      d.nack().catch((err) =>
        this.logger?.warn('could not return a delivery at shutdown', { error: String(err) }),
      )
      return
    }
    if (this.active < this.options.concurrency) this.launch(runner, d)
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
          this.logger?.warn('could not return a delivery of a paused queue', { error: String(err) }),
        )
    }
  }

  private launch(runner: DeliveryRunner, d: Delivery): void {
    this.active++
    runner.process(d).then(
      () => this.finished(runner),
      async (err) => {
        try {
          this.logger?.error('could not settle a delivery; returning it to the queue', {
            error: String(err),
          })
          await d.nack().catch(() => {})
        } finally {
          this.finished(runner)
        }
      },
    )
  }

  /** A launched delivery is done: start the next one waiting, or tell a stop that all are done. */
  private finished(runner: DeliveryRunner): void {
    this.active--
    const next = this.state === 'running' || this.state === 'starting' ? this.buffer.shift() : undefined
    if (next) this.launch(runner, next.d)
    else if (this.active === 0 && this.drained) {
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
