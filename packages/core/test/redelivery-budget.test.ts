import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createApp, type Delivery, defineTask, MemoryBroker, silentLogger } from '../src/index.js'

// maxRedeliveries counts the times a task was started without an outcome (recorded with STARTED
// in the backend), not the times it was delivered: deliveries a worker received and never
// started (a crash with a full prefetch buffer) must not push it into the dead letters.

/** Receive the queue's next message on a fresh connection and drop the connection unsettled. */
async function receiveAndCrash(store: string, queue: string): Promise<number> {
  const broker = new MemoryBroker({ name: store })
  await broker.connect()
  const got = await new Promise<Delivery>((resolve) => {
    void broker.consume(queue, resolve, { prefetch: 1 })
  })
  await broker.close()
  return got.attempt
}

async function failure(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p
  } catch (err) {
    return err as { code?: string; message: string }
  }
  return { message: 'resolved' }
}

describe('the redelivery budget', () => {
  it('is not spent by deliveries that were never started', async () => {
    const store = 'budget-unstarted'
    const t = defineTask({ name: 'budget.ok', queue: store, input: z.number(), handler: (n) => n * 2 })
    const producer = createApp({ broker: `memory://${store}`, backend: `memory://${store}`, tasks: [t] })
    const r = await producer.send(t.s(21))
    for (let i = 1; i <= 3; i++) expect(await receiveAndCrash(store, store)).toBe(i)
    const app = createApp({
      broker: `memory://${store}`,
      backend: `memory://${store}`,
      tasks: [t],
      logger: silentLogger,
    })
    try {
      await app.worker({ concurrency: 1, maxRedeliveries: 1 }).start()
      expect(await r.get({ timeoutMs: 5000 })).toBe(42)
      expect((await r.info())?.attempts).toBe(4)
    } finally {
      await Promise.all([app.close(), producer.close()])
    }
  })

  it('still stops a task that keeps dying while it runs, counting its starts', async () => {
    const store = 'budget-poison'
    let starts = 0
    let started: () => void = () => {}
    const poison = defineTask({
      name: 'budget.poison',
      queue: store,
      input: z.null(),
      handler: () => {
        starts++
        started()
        return new Promise(() => {}) // never finishes: its worker "dies" under it
      },
    })
    const open = () =>
      createApp({
        broker: `memory://${store}`,
        backend: `memory://${store}`,
        tasks: [poison],
        logger: silentLogger,
      })
    const r = await open().send(poison.s(null))
    for (let i = 0; i < 2; i++) {
      const app = open()
      const running = new Promise<void>((resolve) => {
        started = resolve
      })
      await app.worker({ concurrency: 1, maxRedeliveries: 1, shutdownGraceMs: 0 }).start()
      await running
      await app.close() // abandons the running task: back to the queue, started and no outcome
    }
    const app = open()
    try {
      await app.worker({ concurrency: 1, maxRedeliveries: 1 }).start()
      const err = await failure(r.get({ timeoutMs: 5000 }))
      expect(err.code).toBe('ERR_TASK_FAILED')
      expect(err.message).toContain('started 2 times without an outcome')
      expect(starts).toBe(2)
      expect((await app.deadLetters(store).list())[0]?.reason).toBe('exhausted')
    } finally {
      await app.close()
    }
  })

  it('counts deliveries where there is no backend to count starts in', async () => {
    const store = 'budget-nobackend'
    let runs = 0
    const t = defineTask({ name: 'budget.nb', queue: store, input: z.null(), handler: () => ++runs })
    const app = createApp({ broker: `memory://${store}`, tasks: [t], logger: silentLogger })
    try {
      await app.send(t.s(null))
      for (let i = 1; i <= 3; i++) await receiveAndCrash(store, store)
      const dead = new Promise<string>((resolve) => {
        void app
          .worker({
            concurrency: 1,
            maxRedeliveries: 1,
            hooks: { onDeadLetter: (_, reason) => resolve(reason) },
          })
          .start()
      })
      expect(await dead).toBe('exhausted')
      expect(runs).toBe(0)
    } finally {
      await app.close()
    }
  })
})
