import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import {
  type App,
  createApp,
  type DeadLetter,
  type Logger,
  type QueueStats,
  type TaskRecord,
} from '@errand/core'
import type { ChaosOptions } from './chaos-options.js'
import { Disruptor } from './disruptor.js'
import type { ChaosReport } from './report.js'
import { openRunLog, type RunLog } from './run-log.js'
import { sourceVersion } from './source-version.js'
import { openRig } from './stores/index.js'
import type { GarbageItem, StoreRig } from './stores/rig.js'
import { chaosTasks } from './tasks.js'
import { type HandleOutcome, verify } from './verify.js'
import { buildWorkerScript, type WorkerScript } from './worker-bundle.js'
import { WorkerPool } from './worker-pool.js'
import { sendWorkload, type Workload } from './workload.js'

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** The suite's own app logs nothing but errors: the workers' logs are the interesting ones. */
const quiet: Logger = {
  debug() {},
  info() {},
  warn() {},
  error: (m, d) => console.error(`chaos runner: ${m}`, d ?? ''),
}

/**
 * One chaos run on one store: workers in child processes on proxied connections, a workload of
 * singles, chains and chords sent from here (direct), workers SIGKILLed and connections cut all
 * along, garbage written straight into the queue; then every assertion checked. Always ends by
 * itself (every wait is bounded) and leaves no child process and nothing in the stores behind.
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? (() => {})
  const started = Date.now()
  const rig = await openRig(options.store)
  let runLog: RunLog | undefined
  let app: App | undefined
  let pool: WorkerPool | undefined
  let disruptor: Disruptor | undefined
  let script: WorkerScript | undefined
  const sources = sourceVersion()
  try {
    script = await buildWorkerScript(options.store)
    runLog = await openRunLog(rig.runLog)
    const tasks = chaosTasks(rig.queue, runLog)
    app = createApp({
      broker: rig.direct.brokerUrl,
      backend: rig.direct.backendUrl,
      tasks: [...tasks.all],
      logger: quiet,
    })
    await app.connect()
    const logFile = options.reportPath?.replace(/\.json$/, '.log')
    if (logFile) {
      mkdirSync(dirname(logFile), { recursive: true })
      writeFileSync(logFile, '')
    }
    pool = new WorkerPool(
      options.workers,
      {
        brokerUrl: rig.worker.brokerUrl,
        backendUrl: rig.worker.backendUrl,
        queue: rig.queue,
        runLog: rig.runLog,
        concurrency: options.concurrency,
        leaseMs: options.leaseMs,
        shutdownGraceMs: options.shutdownGraceMs,
      },
      script.args,
      logFile,
    )
    await pool.start(120_000)
    log(`${options.store}: ${options.workers} workers ready (${rig.queue})`)
    disruptor = new Disruptor(pool, rig.proxies, options.disrupt)
    disruptor.start()
    const runnerFailures: string[] = []
    const garbage: GarbageItem[] = []
    let stopGarbage = false
    const writing = writeGarbage(rig, options, garbage, () => stopGarbage).catch((err: unknown) => {
      runnerFailures.push(`garbage writer failed: ${String(err)}`)
    })
    const deadline = Date.now() + options.settleTimeoutMs
    const workload = await sendWorkload(app, tasks, options.tasks, {
      batch: options.sendBatch,
      overMs: options.sendOverMs,
      shouldStop: () => Date.now() > deadline,
    })
    log(`${options.store}: sent ${workload.counts.tasks} tasks in ${workload.workflows.length} workflows`)
    const outcomes = await settleAll(workload, deadline, (n) =>
      log(
        `${options.store}: ${n}/${workload.workflows.length} settled, ${pool?.stops.length} stops, ${disruptor?.cuts.length} cuts`,
      ),
    )
    // Every garbage item is written (it is paced like the sends) before the disruptions end.
    const garbageDeadline = Date.now() + options.sendOverMs
    while (garbage.length < options.garbage && Date.now() < garbageDeadline && runnerFailures.length === 0) {
      await sleep(100)
    }
    stopGarbage = true
    await writing
    await disruptor.stop()
    const chaosEndedAt = Date.now()
    log(`${options.store}: disruptions over; draining`)
    const queueAtEnd = await drain(app, rig.queue, options.drainTimeoutMs)
    // Past the worker's own bound on close (grace + 30 s), so that its exit code tells what hung.
    await pool.stop(options.shutdownGraceMs + 40_000)
    const ids = [...workload.tasks.keys()]
    const states = await readStates(app, ids)
    const deadLetters = await listAllDeadLetters(app, rig.queue)
    const runs = await runLog.readAll()
    return verify({
      meta: {
        store: options.store,
        backend: rig.backendKind,
        variant: options.variant,
        queue: rig.queue,
        sources,
        startedAt: new Date(started).toISOString(),
        durationMs: Date.now() - started,
      },
      workload,
      outcomes,
      states,
      runs,
      deadLetters,
      garbage,
      disruptions: { stops: pool.stops, exits: pool.exits, cuts: disruptor.cuts },
      spawned: pool.spawned,
      chaosEndedAt,
      queueAtEnd,
      runnerFailures,
    })
  } finally {
    await disruptor?.stop().catch(() => undefined)
    pool?.killAll()
    script?.remove()
    await app?.close().catch(() => undefined)
    await runLog?.close().catch(() => undefined)
    await rig.close().catch((err: unknown) => console.error(`chaos: cleanup of ${options.store} failed`, err))
  }
}

/** Write the garbage items one by one, spread over `sendOverMs`, until all are written or told to stop. */
async function writeGarbage(
  rig: StoreRig,
  options: ChaosOptions,
  out: GarbageItem[],
  stop: () => boolean,
): Promise<void> {
  for (let n = 0; n < options.garbage && !stop(); n++) {
    out.push(await rig.writeGarbage(n))
    await sleep(options.sendOverMs / Math.max(1, options.garbage))
  }
}

/** Wait for every handle, all within one deadline; a handle still waiting then is unsettled. */
async function settleAll(
  workload: Workload,
  deadline: number,
  progress: (settled: number) => void,
): Promise<HandleOutcome[]> {
  let settled = 0
  const ticker = setInterval(() => progress(settled), 10_000)
  try {
    return await Promise.all(
      workload.workflows.map(async (w): Promise<HandleOutcome> => {
        try {
          const value = await w.handle.get({ timeoutMs: Math.max(1, deadline - Date.now()) })
          settled++
          return { status: 'resolved', value }
        } catch (err) {
          const e = err as { code?: unknown; message?: unknown }
          if (e.code === 'ERR_TIMEOUT') return { status: 'unsettled', message: String(e.message) }
          settled++
          return { status: 'rejected', code: String(e.code), message: String(e.message) }
        }
      }),
    )
  } finally {
    clearInterval(ticker)
  }
}

/** Poll the queue's counts until it is empty or `timeoutMs` passes; the last counts (or the error). */
async function drain(app: App, queue: string, timeoutMs: number): Promise<QueueStats | string> {
  const until = Date.now() + timeoutMs
  let last: QueueStats | string = 'never read'
  while (Date.now() < until) {
    try {
      last = await app.stats(queue)
      if (last.ready === 0 && (last.delayed ?? 0) === 0 && (last.inFlight ?? 0) === 0) return last
    } catch (err) {
      last = String(err)
    }
    await sleep(500)
  }
  return last
}

/** Final records of every task id, in chunks. */
async function readStates(app: App, ids: readonly string[]): Promise<Map<string, TaskRecord | undefined>> {
  const backend = (await app.connect()).backend
  if (!backend) throw new Error('the chaos app has no result backend')
  const out = new Map<string, TaskRecord | undefined>()
  for (let i = 0; i < ids.length; i += 500) {
    const chunk = ids.slice(i, i + 500)
    const records = await backend.getStates(chunk)
    chunk.forEach((id, k) => {
      out.set(id, records[k])
    })
  }
  return out
}

/** Every dead letter of the queue (the suite makes at most a few hundred). */
function listAllDeadLetters(app: App, queue: string): Promise<DeadLetter[]> {
  return app.deadLetters(queue).list({ limit: 100_000 })
}
