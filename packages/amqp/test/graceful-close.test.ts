import { type App, createApp, defineTask, MemoryResultBackend } from '@errand/core'
import { afterAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { AmqpBroker } from '../src/index.js'
import {
  AMQP_URL,
  BrokerPool,
  Collector,
  dec,
  enc,
  quietLogger,
  rabbitAvailable,
  TEST_QUEUE_EXPIRES_MS,
  uniqueQueue,
} from './helpers.js'

const available = await rabbitAvailable()
const pool = new BrokerPool()

/** Resolves once `count()` reaches `n`, checked on every `tick()`; rejects after `timeoutMs`. */
function counter(label: string) {
  let value = 0
  const waiters: { n: number; resolve: () => void }[] = []
  return {
    get value() {
      return value
    },
    tick() {
      value++
      for (const w of waiters.filter((w) => w.n <= value)) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve()
      }
    },
    reach(n: number, timeoutMs: number): Promise<void> {
      if (value >= n) return Promise.resolve()
      let timer: NodeJS.Timeout | undefined
      return Promise.race([
        new Promise<void>((resolve) => waiters.push({ n, resolve })),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`${label}: ${value}/${n} within ${timeoutMs} ms`)),
            timeoutMs,
          )
        }),
      ]).finally(() => clearTimeout(timer))
    },
  }
}

describe.runIf(available)('amqp: graceful close', () => {
  afterAll(() => pool.cleanup(), 60_000)

  const broker = () =>
    pool.track(
      new AmqpBroker({ url: AMQP_URL, queueExpiresMs: TEST_QUEUE_EXPIRES_MS, logger: quietLogger() }),
    )

  it('cancel, ack every delivery, close() at once: the acks hold, nothing returns to the queue', async () => {
    const q = uniqueQueue('amqp-close')
    const n = 20
    const consumerBroker = pool.broker()
    const inbox = new Collector()
    const consumer = await consumerBroker.consume(q, inbox.handler, { prefetch: n })
    await pool.broker().publish(
      q,
      Array.from({ length: n }, (_, i) => ({ body: enc(String(i)) })),
    )
    await inbox.waitFor(n)
    // As a worker's stop() does: no more deliveries, the ones in hand finish, then the broker closes.
    await consumer.cancel()
    await Promise.all(inbox.items.map(({ delivery }) => delivery.ack()))
    await consumerBroker.close()
    expect(await pool.broker().stats(q)).toMatchObject({ ready: 0 })
  })

  it('close() waits for a nack in progress: the message is in the queue once, as the copy', async () => {
    const q = uniqueQueue('amqp-close')
    const consumerBroker = pool.broker()
    const inbox = new Collector()
    await consumerBroker.consume(q, inbox.handler, { prefetch: 1 })
    await pool.broker().publish(q, [{ body: enc('once') }])
    await inbox.waitFor(1)
    const nacked = inbox.items[0]!.delivery.nack()
    await consumerBroker.close()
    await nacked
    const probe = pool.broker()
    expect(await probe.stats(q)).toMatchObject({ ready: 1 })
    const again = new Collector()
    await probe.consume(q, again.handler, { prefetch: 1 })
    await again.waitFor(1)
    // Attempt 2 either way (the copy's count, or a requeued original's redelivered flag): the
    // count above tells them apart; 3 would mean the copy was delivered to the closing consumer
    // and returned.
    expect(dec(again.items[0]!.delivery.body)).toBe('once')
    expect(again.items[0]!.delivery.attempt).toBe(2)
    await again.items[0]!.delivery.ack()
  })

  it('app.close() while tasks run: each finished task is acked for good and never runs again', async () => {
    const queue = uniqueQueue('amqp-close')
    const n = 10
    const runs = new Map<number, number>()
    const started = counter('tasks started')
    const sentinel = counter('sentinel')
    const slow = defineTask({
      name: 'amqp.close.slow',
      queue,
      input: z.object({ i: z.number().int() }),
      handler: async ({ i }) => {
        runs.set(i, (runs.get(i) ?? 0) + 1)
        started.tick()
        // The work: long enough that close() comes while every task is running.
        await new Promise((resolve) => setTimeout(resolve, 200))
        return i
      },
    })
    const last = defineTask({
      name: 'amqp.close.sentinel',
      queue,
      input: z.null(),
      handler: () => sentinel.tick(),
    })
    const apps: App[] = []
    const open = () => {
      const app = createApp({
        broker: broker(),
        // Never the shared 'default' queue: a worker consumes its app's default queue too.
        defaultQueue: queue,
        backend: new MemoryResultBackend(),
        tasks: [slow, last],
        logger: quietLogger(),
      })
      apps.push(app)
      return app
    }
    try {
      const first = open()
      await first.sendMany(Array.from({ length: n }, (_, i) => slow.s({ i })))
      await first.worker({ concurrency: n, shutdownGraceMs: 10_000 }).start()
      await started.reach(n, 10_000)
      await first.close()
      expect([...runs.values()]).toEqual(Array(n).fill(1))

      // Nothing went back to the queue: a classic queue's count is exact once the connection is gone.
      const probe = broker()
      expect((await probe.stats(queue)).ready).toBe(0)

      // A second worker on the same queue runs until a sentinel sent after the close: a task put
      // back by the close would be ahead of it (requeued messages keep their place).
      const second = open()
      await second.send(last.s(null))
      await second.worker({ concurrency: n }).start()
      await sentinel.reach(1, 10_000)
      expect(runs.size).toBe(n)
      expect([...runs.values()]).toEqual(Array(n).fill(1))
    } finally {
      await Promise.allSettled(apps.map((a) => a.close()))
    }
  }, 30_000)
})
