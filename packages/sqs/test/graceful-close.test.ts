import { type App, createApp, defineTask, MemoryResultBackend } from '@errand/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { SqsBroker } from '../src/index.js'
import { type SqsTestEndpoint, startSqs, testOptions, uniqueQueue } from './fauxqs.js'

let sqs: SqsTestEndpoint
beforeAll(async () => {
  sqs = await startSqs()
})
afterAll(() => sqs.stop())

const quiet = { debug() {}, info() {}, warn() {}, error() {} }
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

describe('sqs: graceful close', () => {
  it('app.close() while tasks run: each finished task is deleted for good and never runs again', async () => {
    const queue = uniqueQueue('close')
    const n = 25
    const runs = new Map<number, number>()
    let started = 0
    const slow = defineTask({
      name: 'sqs.close.slow',
      queue,
      input: z.object({ i: z.number().int() }),
      handler: async ({ i }) => {
        runs.set(i, (runs.get(i) ?? 0) + 1)
        started++
        await sleep(200)
        return i
      },
    })
    const apps: App[] = []
    const open = () => {
      const app = createApp({
        broker: new SqsBroker(testOptions(sqs.endpoint, { leaseMs: 2_000 })),
        defaultQueue: queue,
        backend: new MemoryResultBackend(),
        tasks: [slow],
        logger: quiet,
      })
      apps.push(app)
      return app
    }
    try {
      const first = open()
      await first.sendMany(Array.from({ length: n }, (_, i) => slow.s({ i })))
      await first.worker({ concurrency: 10, leaseMs: 2_000, shutdownGraceMs: 10_000 }).start()
      const until = Date.now() + 10_000
      while (started < 10 && Date.now() < until) await sleep(10)
      await first.close()
      const ranFirst = new Map(runs)
      expect([...ranFirst.values()].every((c) => c === 1)).toBe(true)

      // A second worker on the same queue for longer than a lease: it runs the rest, and nothing
      // that the first one finished.
      const second = open()
      await second.worker({ concurrency: 10, leaseMs: 2_000 }).start()
      const end = Date.now() + 20_000
      while (runs.size < n && Date.now() < end) await sleep(50)
      await sleep(4_000)
      expect(runs.size).toBe(n)
      expect(Object.fromEntries([...runs].filter(([, c]) => c !== 1))).toEqual({})
    } finally {
      await Promise.allSettled(apps.map((a) => a.close()))
    }
  }, 60_000)
})

describe('sqs: close() and settles in progress', () => {
  it('an ack in progress when close() starts holds: the message is not handed back and never comes again', async () => {
    const q = uniqueQueue('close-ack')
    const n = 10
    const direct = new SqsBroker(testOptions(sqs.endpoint))
    const closing = new SqsBroker(testOptions(sqs.endpoint, { batchWindowMs: 20 }))
    const seen: import('@errand/core').Delivery[] = []
    try {
      await closing.consume(q, (d) => seen.push(d), { prefetch: n, leaseMs: 5_000 })
      await direct.publish(
        q,
        Array.from({ length: n }, (_, i) => ({ body: new TextEncoder().encode(String(i)) })),
      )
      const end = Date.now() + 10_000
      while (seen.length < n && Date.now() < end) await sleep(20)
      expect(seen.length).toBe(n)
      // Acks under way (their deletes wait for company in the batch window) as close() begins.
      const acks = seen.map((d) => d.ack())
      await closing.close()
      await Promise.allSettled(acks)
      await closing.finished()
      // Nothing came back: a second consumer sees nothing for longer than a poll.
      const again: string[] = []
      await direct.consume(q, (d) => again.push(new TextDecoder().decode(d.body)), { prefetch: n })
      await sleep(2_500)
      expect(again).toEqual([])
    } finally {
      await Promise.allSettled([direct.close(), closing.close()])
    }
  }, 30_000)
})
