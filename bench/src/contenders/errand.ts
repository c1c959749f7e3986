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
import type { BenchPayload, Contender } from '../contender.js'

/** Options of {@link errandContender}. */
export interface ErrandContenderOptions {
  readonly name: string
  readonly broker: () => Broker | Promise<Broker>
  /** With a backend every result is stored (the fair comparison with peers that keep results). */
  readonly backend?: () => ResultBackend | Promise<ResultBackend>
  /** Called once after close, to drop what the run created (queues, keys). */
  readonly cleanup?: (queue: string) => Promise<void>
}

const payloadSchema = z.object({ n: z.number(), sentAt: z.number(), data: z.string() })

/** Errand over any broker (and optionally a result backend), through the public API only. */
export function errandContender(options: ErrandContenderOptions): Contender {
  let app: App | undefined
  let worker: Worker | undefined
  let queue = ''
  let onJob: (p: BenchPayload) => void = () => {}
  const task = () =>
    defineTask({
      name: 'bench.noop',
      queue,
      input: payloadSchema,
      handler: (p) => {
        onJob(p)
        return p.n
      },
    })
  let noop = task()
  return {
    name: options.name,
    async open(q) {
      queue = q
      noop = task()
      const backend = options.backend ? await options.backend() : undefined
      app = createApp({
        broker: await options.broker(),
        ...(backend && { backend }),
        tasks: [noop],
        logger: silentLogger,
      })
      await app.connect()
    },
    async enqueueOne(p) {
      await app?.send(noop.s(p))
    },
    async enqueueBulk(ps) {
      await app?.sendMany(ps.map((p) => noop.s(p)))
    },
    async startWorker(concurrency, cb) {
      onJob = cb
      worker = await app?.worker({ concurrency, queues: [queue], trackStarted: false }).start()
    },
    async stopWorker() {
      await worker?.stop()
      worker = undefined
    },
    async close() {
      const broker = (await app?.connect())?.broker
      await broker?.purge(queue).catch(() => {})
      await app?.close()
      app = undefined
      await options.cleanup?.(queue)
    },
  }
}
