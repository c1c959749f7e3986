/**
 * One worker process of the crash storm (see storm.ts). Prints what happens to each job on
 * stdout, synchronously (a pipe), so the lines written before a SIGKILL reach the parent:
 * `F <n> <attempt>` a delivery reached core, `S <n> <attempt>` its handler started, `D <n>` it
 * returned.
 */
import { createApp, decodeEnvelope, defineTask, silentLogger } from '@errand/core'
import { z } from 'zod'
import { PostgresBroker, PostgresResultBackend } from '../../src/index.js'

const url = process.env.STORM_URL ?? ''
const queue = process.env.STORM_QUEUE ?? ''
const concurrency = Number(process.env.STORM_CONCURRENCY ?? 10)
const prefetch = Number(process.env.STORM_PREFETCH ?? concurrency)
const out = (line: string): void => void process.stdout.write(`${line}\n`)

const work = defineTask({
  name: 'storm.work',
  queue,
  input: z.number(),
  handler: async (n, ctx) => {
    out(`S ${n} ${ctx.attempt}`)
    await new Promise((r) => setTimeout(r, 5 + Math.random() * 20))
    out(`D ${n}`)
  },
})

const broker = new PostgresBroker({ url, logger: silentLogger })
const consume = broker.consume.bind(broker)
broker.consume = (q, onDelivery, options) =>
  consume(
    q,
    (d) => {
      out(`F ${String(decodeEnvelope(d.body, 1 << 20).input)} ${d.attempt}`)
      onDelivery(d)
    },
    options,
  )
const app = createApp({
  broker,
  backend: new PostgresResultBackend({ url, logger: silentLogger }),
  tasks: [work],
  logger: silentLogger,
})
await app.worker({ concurrency, prefetch, leaseMs: 1000, maxRedeliveries: 5, queues: [queue] }).start()
out('READY')
