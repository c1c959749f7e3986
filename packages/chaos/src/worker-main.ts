import { type Broker, createApp, type ResultBackend } from '@errand/core'
import { openRunLog } from './run-log.js'
import { chaosTasks } from './tasks.js'
import { READY_LINE, WORKER_CONFIG_ENV, type WorkerConfig } from './worker-config.js'

/** How a worker entry makes its store's broker and backend from URLs. */
export interface WorkerFactories {
  createBroker(url: string): Broker
  createResultBackend(url: string): ResultBackend
}

/**
 * The body of a chaos worker process: one app on the proxied URLs, `runWorker` (graceful on
 * SIGTERM), and a line on stdout once it consumes. The supervisor SIGKILLs it at random; any
 * other death (an uncaught error, an unhandled rejection: Node's default is to exit 1) is what the
 * suite catches. The store's adapters come from the entry (`worker-entries/<store>.ts`), so that a
 * bundle of one entry holds only what that store needs.
 */
export async function runWorkerProcess(factories: WorkerFactories): Promise<void> {
  const raw = process.env[WORKER_CONFIG_ENV]
  if (raw === undefined) throw new Error(`${WORKER_CONFIG_ENV} is not set`)
  const config = JSON.parse(raw) as WorkerConfig
  // No orphans: if the supervisor dies (even by SIGKILL) its end of the IPC channel closes. The
  // channel is unref'd so that it never holds a gracefully stopped worker open.
  process.channel?.unref()
  process.once('disconnect', () => process.exit(70))
  // It may have closed while this process was still loading, before anyone listened.
  if (process.send !== undefined && !process.connected) process.exit(70)
  const runs = await openRunLog(config.runLog)
  const tasks = chaosTasks(config.queue, runs)
  const app = createApp({
    broker: factories.createBroker(config.brokerUrl),
    backend: factories.createResultBackend(config.backendUrl),
    tasks: [...tasks.all],
  })
  process.once('SIGTERM', () => {
    // runWorker closes the app on SIGTERM. Two bounds, each with an exit code of its own so the
    // supervisor can tell: close must resolve (running tasks get the grace period), and once it
    // has, nothing may hold the process open (a timer, a socket, a poll).
    const exitWith = (code: number, why: string) => {
      process.stderr.write(`chaos worker: ${why}\n`)
      process.exit(code)
    }
    setTimeout(
      () => exitWith(4, `app.close() not resolved ${config.shutdownGraceMs + 30_000} ms after SIGTERM`),
      config.shutdownGraceMs + 30_000,
    ).unref()
    // The run log goes last: tasks still finishing during the grace period record into it.
    void app
      .close()
      .then(() => runs.close())
      .then(() => {
        setTimeout(
          () => exitWith(3, 'still alive 5 s after app.close() resolved (a handle keeps it open)'),
          5_000,
        ).unref()
      })
  })
  await app.runWorker({
    // Only the run's own queue: the app's default queue ('default') may be someone else's.
    queues: [config.queue],
    concurrency: config.concurrency,
    leaseMs: config.leaseMs,
    shutdownGraceMs: config.shutdownGraceMs,
  })
  process.stdout.write(`${READY_LINE}\n`)
}
