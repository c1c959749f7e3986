import { type App, chain, createApp, defineTask, MemoryResultBackend } from '@errand/core'
import { afterAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { AmqpBroker } from '../src/index.js'
import {
  AMQP_URL,
  BrokerPool,
  quietLogger,
  rabbitAvailable,
  TEST_QUEUE_EXPIRES_MS,
  uniqueQueue,
} from './helpers.js'

const available = await rabbitAvailable()
const pool = new BrokerPool()

/**
 * Workers stopped gracefully (app.close(), long grace, no connection cut) while tasks of varied
 * length run, some failing once and retried, with a prefetch above the concurrency so that
 * deliveries wait in the worker's buffer: every task runs exactly as often as its own logic asks
 * (once, or twice for those that fail once), never again because a worker stopped.
 */
describe.runIf(available)('amqp: graceful stops never make a task run again', () => {
  afterAll(() => pool.cleanup(), 60_000)

  it('several stop timings, retries, prefetch above concurrency: no extra runs', async () => {
    const queue = uniqueQueue('amqp-stop-rerun')
    const runs = new Map<number, number>()
    const failedOnce = new Set<number>()
    const done = new Set<number>()
    const work = defineTask({
      name: 'amqp.stop.work',
      queue,
      input: z.object({ i: z.number().int() }),
      retry: { attempts: 5, backoff: { type: 'fixed', delayMs: 20 } },
      handler: async ({ i }) => {
        runs.set(i, (runs.get(i) ?? 0) + 1)
        await new Promise((resolve) => setTimeout(resolve, (i % 7) * 12))
        if (i % 5 === 0 && !failedOnce.has(i)) {
          failedOnce.add(i)
          throw new Error('fails once')
        }
        done.add(i)
        return i
      },
    })
    // Chains: step i (i + 100000) runs after step i; each step a task of its own to count.
    const step = defineTask({
      name: 'amqp.stop.step',
      queue,
      input: z.number().int(),
      handler: async (n) => {
        runs.set(n, (runs.get(n) ?? 0) + 1)
        await new Promise((resolve) => setTimeout(resolve, (n % 5) * 10))
        done.add(n)
        return n + 100_000
      },
    })
    // One backend for every app (chains pass results through it); an app's close leaves it open.
    const shared = new MemoryResultBackend()
    const backend = new Proxy(shared, {
      get: (target, key) => {
        if (key === 'close') return async () => {}
        const value = Reflect.get(target, key, target)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    const apps: App[] = []
    const open = () => {
      const app = createApp({
        broker: pool.track(
          new AmqpBroker({ url: AMQP_URL, queueExpiresMs: TEST_QUEUE_EXPIRES_MS, logger: quietLogger() }),
        ),
        defaultQueue: queue,
        backend,
        tasks: [work, step],
        logger: quietLogger(),
      })
      apps.push(app)
      return app
    }
    const perRound = 60
    const chains = 10
    const timings = [0, 5, 20, 45, 80, 150]
    try {
      const stayer = open()
      await stayer.worker({ concurrency: 3, prefetch: 6, shutdownGraceMs: 20_000 }).start()
      for (const [round, stopAfter] of timings.entries()) {
        const stopper = open()
        await stopper.worker({ concurrency: 4, prefetch: 20, shutdownGraceMs: 20_000 }).start()
        await stopper.sendMany(
          Array.from({ length: perRound }, (_, k) => work.s({ i: round * perRound + k })),
        )
        for (let k = 0; k < chains; k++) {
          const n = 50_000 + round * chains + k
          await stopper.send(chain(step.s(n), step.s()))
        }
        await new Promise((resolve) => setTimeout(resolve, stopAfter))
        await stopper.close()
      }
      const total = timings.length * (perRound + 2 * chains)
      const deadline = Date.now() + 30_000
      while (done.size < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      // Time for anything put back by a stop to come round again.
      await new Promise((resolve) => setTimeout(resolve, 1000))
      expect(done.size).toBe(total)
      const extra = [...runs].filter(([i, n]) => n !== (i < 50_000 && i % 5 === 0 ? 2 : 1))
      expect(extra).toEqual([])
    } finally {
      await Promise.allSettled(apps.map((a) => a.close()))
    }
  }, 90_000)
})
