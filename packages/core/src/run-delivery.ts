import type { AsyncResult } from './async-result.js'
import type { Delivery } from './broker.js'
import type { AnyCanvas } from './canvas.js'
import { CHUNK_TASK, chunkRunnerFor } from './canvas-chunks.js'
import { debounceReplaced } from './dedup.js'
import { decodeEnvelope, type Envelope } from './envelope.js'
import { CanceledError, ErrandError, InvalidOptionError, serializeError } from './errors.js'
import type { WorkerEvents } from './events-runtime.js'
import type { Admission, FlowGate } from './flow-gate.js'
import { runInstrumented, wrapsRuns } from './instrumentation.js'
import { watchLost } from './kit/settle-once.js'
import { handOver } from './replace.js'
import { Replaced } from './replaced.js'
import type { TaskRecord } from './result-backend.js'
import { parseOutput, RunningTask, runHandler, unserializableOutput } from './running-task.js'
import type { Runtime } from './runtime.js'
import { checkSend, sendCanvases } from './send.js'
import type { SendOptions } from './send-options.js'
import { deliveryBudget, failUndecodable, startRun } from './start-run.js'
import type { AnyTask } from './task.js'
import { TaskOutcomes } from './task-outcome.js'
import { type RunFacts, type TaskTelemetry, telemetryMaker } from './task-telemetry.js'
import type { ResolvedWorkerOptions, TaskInfo } from './worker-options.js'

// Running one delivery to its outcome: decode, look up the task, the gates (early, expired,
// debounced, invalid input, flow limits), STARTED, the handler, then one of the outcome writers.
// Made by a worker when it starts, with the connected runtime; the worker's lifecycle (consumers,
// timers, graceful stop) stays in worker.ts.

/** Runs deliveries for one started worker. */
export class DeliveryRunner {
  private readonly outcomes: TaskOutcomes

  constructor(
    private readonly rt: Runtime,
    private readonly options: ResolvedWorkerOptions,
    /** Rate and concurrency limits; undefined when no task or queue of this app has any. */
    private readonly gate: FlowGate | undefined,
    private readonly emit: WorkerEvents | undefined,
    /** The tasks running now, shared with the worker (lease extension, cancellation, shutdown). */
    private readonly running: Set<RunningTask>,
  ) {
    this.outcomes = new TaskOutcomes(rt, options, emit)
  }

  /** `ctx.send`: `canvas` sent with the running task as its parent. One function for every task. */
  private readonly sendChild = async (
    running: RunningTask,
    canvas: AnyCanvas,
    options: SendOptions,
  ): Promise<AsyncResult<unknown>> => {
    const rt = this.rt
    const env = running.envelope
    checkSend([canvas], options, rt.tasks)
    const lineage = { root: env.root ?? env.id, parent: env.id, headers: env.headers }
    const [result] = await sendCanvases(rt, [canvas], options, { localResults: false }, lineage)
    return result as AsyncResult<unknown>
  }

  /** A task's progress and log recorder, made when its handler first uses one. */
  private readonly makeTelemetry = (running: RunningTask): TaskTelemetry => {
    const { envelope, attempt, startedRecord, ttlMs } = running
    return telemetryMaker(this.rt, envelope, attempt, startedRecord, ttlMs, this.emit)(running)
  }

  /** Take `d` to its outcome; rejects only when it could not be settled. */
  async process(d: Delivery): Promise<void> {
    const rt = this.rt
    let env: Envelope
    try {
      env = decodeEnvelope(d.body, rt.maxEnvelopeBytes)
    } catch (err) {
      return this.outcomes.deadLetter(
        d,
        {},
        'undecodable',
        await failUndecodable(rt.backend, err, rt.resultTtlMs),
      )
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
      return this.outcomes.failed(d, env, info, 'unregistered', error)
    }
    const now = Date.now()
    if (env.eta !== undefined && env.eta > now) {
      // Early (a delay longer than the broker allows, or clock skew): hop again, never run early.
      await rt.dispatcher.publish([env])
      return d.ack()
    }
    if (env.expiresAt !== undefined && env.expiresAt < now) {
      return this.outcomes.failed(
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
      return this.outcomes.failed(d, env, info, 'invalid-input', serializeError(err))
    }
    let release: (() => Promise<void>) | undefined
    if (this.gate?.applies(task, env.queue)) {
      let admission: Admission
      try {
        admission = await this.gate.admit(task, env, input)
      } catch (err) {
        // A key function that fails on this input fails the same way every time.
        if (!(err instanceof InvalidOptionError)) throw err
        return this.outcomes.failed(d, env, info, 'invalid-input', serializeError(err))
      }
      if (!admission.admitted) return this.defer(d, env, admission.delayMs)
      release = admission.release
    }
    if (release === undefined) return this.run(d, env, info, task, input, now)
    try {
      return await this.run(d, env, info, task, input, now)
    } finally {
      await release()
    }
  }

  /**
   * A limit has no room: the task goes back to its queue to come again after `delayMs`, as the
   * same attempt (waiting spends no attempt and no redelivery), then this delivery is acked.
   */
  private async defer(d: Delivery, env: Envelope, delayMs: number): Promise<void> {
    await this.rt.dispatcher.publish([
      { ...env, eta: Date.now() + delayMs, deferrals: (env.deferrals ?? 0) + 1 },
    ])
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
    const rt = this.rt
    const { maxRedeliveries } = this.options
    const ttlMs = task.resultTtlMs ?? rt.resultTtlMs
    let started: TaskRecord | undefined
    const decision =
      rt.backend && this.options.trackStarted
        ? await startRun(rt.backend, d, env, info, ttlMs, maxRedeliveries, now, (r) => {
            started = r
          })
        : deliveryBudget(d, maxRedeliveries)
    if (decision === 'canceled') return this.outcomes.canceled(d, env, info)
    if (decision !== 'run') return this.outcomes.failed(d, env, info, 'exhausted', serializeError(decision))
    this.emit?.started(env, info.attempt)
    if (this.options.hooks?.onStart) await this.outcomes.hook('onStart', info)
    const running = new RunningTask(d, env, now)
    // The store took the message back: the handler's signal aborts and nothing is stored or
    // settled. A kit delivery calls one watcher without making its `lost` signal; any other
    // delivery is watched through its signal.
    let lost: AbortSignal | undefined
    let onLostEvent: (() => void) | undefined
    const watched = watchLost(d, (reason) => running.lose(reason))
    if (!watched) {
      lost = d.lost
      if (lost?.aborted) running.lose(lost.reason)
      else if (lost) {
        const signal = lost
        onLostEvent = () => running.lose(signal.reason)
        lost.addEventListener('abort', onLostEvent, { once: true })
      }
    }
    running.attempt = info.attempt
    running.startedRecord = started
    running.ttlMs = ttlMs
    running.makeTelemetry = this.makeTelemetry
    running.sendChild = this.sendChild
    this.running.add(running)
    let output: unknown
    let failure: unknown
    let ok = false
    try {
      const instrumentation = rt.dispatcher.instrumentation
      if (instrumentation.length === 0 || !wrapsRuns(instrumentation)) {
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
      if (watched) watchLost(d, undefined)
      else if (onLostEvent) lost?.removeEventListener('abort', onLostEvent)
    }
    const recorder = running.usedTelemetry
    // Awaited only when the handler reported progress or logged: the usual path adds no await.
    const run: RunFacts = { startedAt: now, fields: recorder ? await recorder.finish() : undefined }
    if (running.abandoned) return
    if (ok) {
      // `return ctx.replace(canvas)`: the canvas takes the task's place and stores its result.
      if (output instanceof Replaced) {
        const refused = await handOver(rt, env, output)
        if (refused) return this.outcomes.failed(d, env, info, 'rejected', refused, run)
        return d.ack()
      }
      // Checked before anything is stored or sent on: an output JSON cannot carry fails the same
      // way every time, so it is a final failure (no retry, no redelivery: the handler's side
      // effects are not repeated), like an output that does not match its schema.
      const unserializable = unserializableOutput(task, output)
      if (unserializable)
        return this.outcomes.failed(d, env, info, 'rejected', serializeError(unserializable), run)
      return this.outcomes.succeeded(d, env, info, task, output, run)
    }
    if (running.reason instanceof CanceledError) return this.outcomes.canceled(d, env, info)
    return this.outcomes.attemptFailed(d, env, info, task, failure, run)
  }
}
