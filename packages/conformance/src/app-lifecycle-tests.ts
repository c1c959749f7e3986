import { defineTask } from '@errand/core'
import { expect } from 'vitest'
import { z } from 'zod'
import type { AppSuiteContext } from './app-harness.js'
import { deferred, withTimeout } from './helpers.js'

/** Graceful shutdown, a worker lost mid-task, lease extension. */
export function registerAppLifecycleTests({ test, h, soon }: AppSuiteContext): void {
  test('graceful shutdown lets running tasks finish, returns the rest, and another worker runs them', async () => {
    const queue = h.queue()
    const started = deferred()
    const release = deferred()
    const ranBy: string[] = []
    let first = true
    const t = defineTask({
      name: 'conf.shutdown',
      queue,
      input: z.object({ n: z.number() }),
      handler: async ({ n }) => {
        ranBy.push(String(n))
        if (first) {
          first = false
          started.resolve()
          await release.promise
        }
        return n
      },
    })
    const a = await h.app({ tasks: [t] })
    const b = await h.app({ tasks: [t] })
    const results = await a.sendMany(Array.from({ length: 10 }, (_, n) => t.s({ n })))
    const worker = await a.worker({ concurrency: 1, prefetch: 5, shutdownGraceMs: soon }).start()
    await withTimeout(started.promise, soon, 'the first task')
    const stopping = worker.stop()
    release.resolve()
    await withTimeout(stopping, soon, 'the worker to stop')
    const doneByA = ranBy.length
    expect(doneByA, 'the worker being stopped must finish the task it was running').toBeGreaterThanOrEqual(1)
    await b.worker({ concurrency: 4 }).start()
    const values = await Promise.all(results.map((r) => r.get({ timeoutMs: soon })))
    expect(
      values,
      'every task must complete: those the stopped worker held unstarted must go back to the queue and run on the other worker',
    ).toEqual(Array.from({ length: 10 }, (_, n) => n))
  })

  test('shutdown past the grace period aborts the task and returns it to the queue', async () => {
    const queue = h.queue()
    const started = deferred()
    const aborted = deferred<unknown>()
    const t = defineTask({
      name: 'conf.grace',
      queue,
      input: z.null(),
      handler: (_i, ctx) =>
        new Promise((resolve) => {
          if (ctx.attempt > 1) return resolve(`rerun ${ctx.attempt}`)
          started.resolve()
          ctx.signal.addEventListener('abort', () => aborted.resolve(ctx.signal.reason))
        }),
    })
    const a = await h.app({ tasks: [t] })
    const b = await h.app({ tasks: [t] })
    const r = await a.send(t.s(null))
    const worker = await a.worker({ shutdownGraceMs: h.ms(100) }).start()
    await withTimeout(started.promise, soon, 'the task to start')
    await worker.stop()
    expect(
      ((await withTimeout(aborted.promise, soon, 'the abort')) as { code?: string }).code,
      'a task still running past shutdownGraceMs must see ctx.signal abort with an ERR_CLOSED reason',
    ).toBe('ERR_CLOSED')
    await b.worker().start()
    expect(
      await r.get({ timeoutMs: soon }),
      'a task aborted at shutdown must go back to the queue and run again on another worker',
    ).toMatch(/^rerun \d+$/)
  })

  test('a task whose worker dies without settling runs again elsewhere with attempt + 1', async () => {
    const queue = h.queue()
    const started = deferred()
    const attempts: number[] = []
    const t = defineTask({
      name: 'conf.crash',
      queue,
      input: z.null(),
      handler: (_i, ctx) => {
        attempts.push(ctx.attempt)
        if (ctx.attempt === 1) {
          started.resolve()
          return new Promise(() => {}) // hangs until its worker is gone
        }
        return 'survived'
      },
    })
    const a = await h.app({ tasks: [t] })
    const b = await h.app({ tasks: [t] })
    const r = await b.send(t.s(null))
    await a.worker({ leaseMs: h.ms(1000), shutdownGraceMs: 0 }).start()
    await withTimeout(started.promise, soon, 'the first run')
    // The "crash": the connection goes away without an ack (close() of the broker itself).
    await (await a.connect()).broker.close()
    await b.worker({ leaseMs: h.ms(1000) }).start()
    expect(
      await r.get({ timeoutMs: soon + h.ms(2000) }),
      "a task whose worker's broker closed mid-run must run again on another worker",
    ).toBe('survived')
    expect(attempts, 'the rerun after a lost worker must be ctx.attempt 2 (the redelivery counts)').toEqual([
      1, 2,
    ])
  })

  test('a task running longer than its lease is not redelivered while its worker extends the lease', async () => {
    const queue = h.queue()
    let runs = 0
    const leaseMs = h.ms(300)
    const t = defineTask({
      name: 'conf.lease',
      queue,
      input: z.null(),
      handler: async () => {
        runs++
        await new Promise((r) => setTimeout(r, leaseMs * 4))
        return runs
      },
    })
    const a = await h.app({ tasks: [t] })
    const b = await h.app({ tasks: [t] })
    await a.worker({ leaseMs }).start()
    await b.worker({ leaseMs }).start()
    const r = await a.send(t.s(null))
    expect(
      await r.get({ timeoutMs: soon + leaseMs * 4 }),
      'a task running 4 leases long must complete with the result of its single run',
    ).toBe(1)
    expect(
      runs,
      'a task whose worker extends its lease must run once: it was redelivered to the other worker',
    ).toBe(1)
  })
}
