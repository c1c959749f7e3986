import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createApp, defineTask, MemoryBroker, MemoryResultBackend } from '../src/index.js'

function appWith(name: string) {
  const t = defineTask({ name: 'sched.t', input: z.null(), handler: () => null })
  const app = createApp({
    broker: new MemoryBroker({ name }),
    backend: new MemoryResultBackend({ name }),
    tasks: [t],
  })
  // Count what reaches the broker rather than running a worker: one publish per tick sent.
  const broker = new MemoryBroker({ name })
  return { app, t, broker }
}

describe('schedules', () => {
  it('catches up missed ticks within the window once, whoever starts later', async () => {
    const name = `sched-${Math.random().toString(36).slice(2)}`
    const a = appWith(name)
    const b = appWith(name)
    await a.broker.connect()
    const s1 = await a.app.schedule('catchup', { everyMs: 100 }, a.t.s(null), { catchUp: { withinMs: 1000 } })
    const afterFirst = (await a.broker.stats('default')).ready
    expect(afterFirst).toBeGreaterThanOrEqual(9)
    expect(afterFirst).toBeLessThanOrEqual(11)
    const s2 = await b.app.schedule('catchup', { everyMs: 100 }, b.t.s(null), { catchUp: { withinMs: 1000 } })
    const afterSecond = (await a.broker.stats('default')).ready
    // The second scheduler finds the window's ticks claimed: at most the tick that just came due.
    expect(afterSecond - afterFirst).toBeLessThanOrEqual(1)
    await Promise.all([s1.stop(), s2.stop(), a.app.close(), b.app.close(), a.broker.close()])
  })

  it('skips missed ticks by default and fires from now on', async () => {
    const name = `sched-${Math.random().toString(36).slice(2)}`
    const a = appWith(name)
    await a.broker.connect()
    const s = await a.app.schedule('skip', { everyMs: 100 }, a.t.s(null))
    expect((await a.broker.stats('default')).ready).toBe(0)
    await new Promise((r) => setTimeout(r, 350))
    await s.stop()
    const fired = (await a.broker.stats('default')).ready
    expect(fired).toBeGreaterThanOrEqual(2)
    expect(fired).toBeLessThanOrEqual(4)
    await Promise.all([a.app.close(), a.broker.close()])
  })

  it('stop() fires a tick that came due while the event loop was busy (its timer had not run)', async () => {
    const name = `sched-${Math.random().toString(36).slice(2)}`
    const a = appWith(name)
    await a.broker.connect()
    const s = await a.app.schedule('late', { everyMs: 50 }, a.t.s(null))
    const due = s.nextTick()?.getTime() ?? 0
    // Block the event loop past the tick, then stop before its timer can run.
    while (Date.now() <= due + 5) {
      // busy
    }
    await s.stop()
    expect((await a.broker.stats('default')).ready, 'the due tick must be sent, not dropped').toBe(1)
    // Nothing fires after stop().
    await new Promise((r) => setTimeout(r, 120))
    expect((await a.broker.stats('default')).ready).toBe(1)
    await Promise.all([a.app.close(), a.broker.close()])
  })

  it('refuses a schedule without a backend, and bad intervals, naming the option', async () => {
    const t = defineTask({ name: 'sched.nb', input: z.null(), handler: () => null })
    const app = createApp({ broker: new MemoryBroker({ name: 'sched-nb' }), tasks: [t] })
    await expect(app.schedule('x', { everyMs: 100 }, t.s(null))).rejects.toMatchObject({
      code: 'ERR_NOT_SUPPORTED',
    })
    await expect(app.schedule('y', { everyMs: 1 }, t.s(null))).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
      message: expect.stringContaining('everyMs'),
    })
    await app.close()
  })
})

describe('runWorker', () => {
  it('closes the app gracefully on SIGTERM', async () => {
    const started = deferred()
    const release = deferred()
    let finished = false
    const t = defineTask({
      name: 'sig.t',
      input: z.null(),
      handler: async () => {
        started.resolve()
        await release.promise
        finished = true
      },
    })
    const name = `sig-${Math.random().toString(36).slice(2)}`
    const app = createApp({
      broker: new MemoryBroker({ name }),
      backend: new MemoryResultBackend({ name }),
      tasks: [t],
    })
    const worker = await app.runWorker({ signals: ['SIGUSR2'], shutdownGraceMs: 5000 })
    const r = await app.send(t.s(null))
    await started.promise
    process.emit('SIGUSR2', 'SIGUSR2')
    expect(worker.activeCount).toBe(1)
    release.resolve()
    await expect(app.send(t.s(null))).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    await app.close()
    expect(finished).toBe(true)
    expect(process.listenerCount('SIGUSR2')).toBe(0)
    expect(r.id).toBeTruthy()
  })
})

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((r) => {
    resolve = r
  })
  return { promise, resolve }
}
