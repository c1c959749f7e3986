import {
  type App,
  type Broker,
  createApp,
  defineTask,
  type ResultBackend,
  silentLogger,
  type Worker,
} from '@errand/core'
import { z } from 'zod'
import type { Contender, OnJob, RunOptions } from '../types.js'

const payloadSchema = z.object({ n: z.number(), sentAt: z.number(), data: z.string() })

/** Options of {@link errand}. */
export interface ErrandOptions {
  readonly queue: string
  readonly broker: () => Broker | Promise<Broker>
  /** With a backend, every result is stored (the "results kept" class). */
  readonly backend?: () => ResultBackend | Promise<ResultBackend>
  /** Diagnostics only (not in the published set): `events: false` on the app. */
  readonly noEvents?: boolean
  /** Drop what the run created (schema, keys), after the app is closed. */
  readonly teardown?: () => Promise<void>
  /** The run's options (`retries`: the task's `retry` is `{ attempts: 1 + retries }` with a fixed 0 ms backoff: retried at once, as the peers). */
  readonly run?: RunOptions
}

/**
 * Errand through its public API at its defaults: `createApp` + `app.worker({ concurrency,
 * queues })` (no other worker option: `trackStarted` stays on, its default).
 */
export function errand(options: ErrandOptions): Contender {
  const { queue } = options
  let onJob: OnJob = () => {}
  const retries = options.run?.retries ?? 0
  const noop = defineTask({
    name: 'bench.noop',
    queue,
    input: payloadSchema,
    ...(retries > 0 && { retry: { attempts: 1 + retries, backoff: { type: 'fixed', delayMs: 0 } } }),
    handler: (p) => {
      const waiting = onJob(p)
      return waiting === undefined ? p.n : waiting.then(() => p.n)
    },
  })
  let app: App | undefined
  let worker: Worker | undefined
  let broker: Broker | undefined
  return {
    async setup() {
      broker = await options.broker()
      const backend = options.backend ? await options.backend() : undefined
      app = createApp({
        broker,
        ...(backend && { backend }),
        ...(options.noEvents && { events: false }),
        tasks: [noop],
        logger: silentLogger,
      })
      await app.connect()
    },
    async enqueueOne(p) {
      await app!.send(noop.s(p))
    },
    async enqueueBulk(ps) {
      await app!.sendMany(ps.map((p) => noop.s(p)))
    },
    async startWorker(concurrency, cb) {
      onJob = cb
      worker = await app!.worker({ concurrency, queues: [queue] }).start()
    },
    async stopWorker() {
      await worker?.stop()
      worker = undefined
    },
    async remaining() {
      const s = await broker!.stats(queue)
      return s.ready + (s.delayed ?? 0) + (s.inFlight ?? 0)
    },
    async teardown() {
      await broker?.purge(queue).catch(() => {})
      await app?.close()
      app = undefined
      await options.teardown?.()
    },
  }
}
