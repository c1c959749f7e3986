import { chord, defineTask } from '@errand/core'
import { expect } from 'vitest'
import { z } from 'zod'
import type { AppSuiteContext } from './app-harness.js'
import { deferred, expectCode, sleep, withTimeout } from './helpers.js'

/** Periodic tasks, dedup, cancellation. */
export function registerAppControlTests({ test, h, soon }: AppSuiteContext): void {
  test('a periodic tick fires once with three schedulers running the same schedule', async () => {
    const queue = h.queue()
    let runs = 0
    const t = defineTask({
      name: 'conf.tick',
      queue,
      input: z.object({ at: z.string() }),
      handler: () => void runs++,
    })
    const apps = await Promise.all([h.app({ tasks: [t] }), h.app({ tasks: [t] }), h.app({ tasks: [t] })])
    await apps[0]?.worker({ concurrency: 4 }).start()
    const every = h.ms(250)
    const name = `conf-${queue}`
    // Ticks fall on multiples of `every`; count those inside a window, whatever the latency.
    const ticksIn = (from: number, to: number) => Math.floor(to / every) - Math.floor(from / every)
    const armFrom = Date.now()
    const schedules = await Promise.all(
      apps.map((a) => a.schedule(name, { everyMs: every }, t.s({ at: 'now' }))),
    )
    const armTo = Date.now()
    await sleep(every * 4 + every / 2)
    const stopFrom = Date.now()
    await Promise.all(schedules.map((s) => s.stop()))
    const stopTo = Date.now()
    const least = ticksIn(armTo, stopFrom)
    const most = ticksIn(armFrom, stopTo)
    await withTimeout(
      (async () => {
        while (runs < least) await sleep(10)
      })(),
      soon,
      `${least} ticks to run`,
    )
    // A tick sent twice would show up as a run more than there were ticks.
    await sleep(h.ms(300))
    expect(
      runs,
      'a periodic schedule ran fewer times than the ticks inside its window (ticks lost)',
    ).toBeGreaterThanOrEqual(least)
    expect(
      runs,
      'a periodic schedule ran more times than there were ticks: three schedulers sent one tick twice (setIfAbsent claims not exclusive?)',
    ).toBeLessThanOrEqual(most)
  })

  test('a cron schedule with a bad pattern is refused naming the option', async () => {
    const queue = h.queue()
    const t = defineTask({ name: 'conf.cron', queue, input: z.null(), handler: () => null })
    const app = await h.app({ tasks: [t] })
    await expectCode(
      () => app.schedule('bad', 'not a cron', t.s(null)),
      'ERR_INVALID_OPTION',
      'a bad pattern',
    )
    const s = await app.schedule('nightly', '0 3 * * *', t.s(null), { timezone: 'Europe/Paris' })
    const next = s.nextTick()
    expect(next?.getTime(), 'a valid cron schedule must report its next tick in the future').toBeGreaterThan(
      Date.now(),
    )
    await s.stop()
  })

  test('dedup: a second send with the same key within the window returns the first id', async () => {
    const queue = h.queue()
    let runs = 0
    const t = defineTask({ name: 'conf.dedup', queue, input: z.number(), handler: (n) => ++runs + n * 0 })
    const app = await h.app({ tasks: [t] })
    const key = `k-${queue}`
    const first = await app.send(t.s(1), { dedupKey: key, dedupTtlMs: h.ms(60_000) })
    const second = await app.send(t.s(2), { dedupKey: key, dedupTtlMs: h.ms(60_000) })
    expect(
      second.id,
      "a second send with the same dedupKey within the window must return the first send's id",
    ).toBe(first.id)
    const other = await app.send(t.s(3), { dedupKey: `${key}-other` })
    expect(other.id, 'a send with another dedupKey must get a new id').not.toBe(first.id)
    await app.worker().start()
    await first.get({ timeoutMs: soon })
    await other.get({ timeoutMs: soon })
    await sleep(h.ms(200))
    expect(runs, 'only the two distinct sends may run: the deduplicated one ran too').toBe(2)
  })

  test('cancel: a queued task is dead-lettered as canceled when reached', async () => {
    const queue = h.queue()
    let runs = 0
    const t = defineTask({ name: 'conf.cancel.queued', queue, input: z.null(), handler: () => ++runs })
    const app = await h.app({ tasks: [t] })
    const dead = deferred<string>()
    const r = await app.send(t.s(null))
    await app.cancel(r.id)
    await app.worker({ hooks: { onDeadLetter: (_i, reason) => dead.resolve(reason) } }).start()
    expect(
      await withTimeout(dead.promise, soon, 'the dead letter'),
      'a task canceled while queued must be dead-lettered with reason canceled when a worker reaches it',
    ).toBe('canceled')
    await expectCode(() => r.get({ timeoutMs: soon }), 'ERR_CANCELED', 'get() of a canceled task')
    expect(runs, 'a task canceled while queued must never run').toBe(0)
  })

  test('cancel: a running task has its signal aborted within about a second', async () => {
    const queue = h.queue()
    const started = deferred()
    const aborted = deferred<number>()
    const t = defineTask({
      name: 'conf.cancel.running',
      queue,
      input: z.null(),
      handler: (_i, ctx) =>
        new Promise((_, reject) => {
          started.resolve()
          ctx.signal.addEventListener('abort', () => {
            aborted.resolve(Date.now())
            reject(ctx.signal.reason)
          })
        }),
    })
    const app = await h.app({ tasks: [t] })
    await app.worker({ cancelPollMs: 200 }).start()
    const r = await app.send(t.s(null))
    await withTimeout(started.promise, soon, 'the task to start')
    const canceledAt = Date.now()
    await app.cancel(r.id)
    const at = await withTimeout(aborted.promise, soon, 'the abort')
    expect(
      at - canceledAt,
      'a running task must see ctx.signal abort within about 1.5 s of app.cancel()',
    ).toBeLessThan(h.ms(1500))
    await expectCode(() => r.get({ timeoutMs: soon }), 'ERR_CANCELED', 'get() of a canceled task')
    await withTimeout(
      (async () => {
        while ((await app.deadLetters(queue).list()).length === 0) await sleep(20)
      })(),
      soon,
      'the dead letter',
    )
    expect(
      (await app.deadLetters(queue).list())[0]?.reason,
      'a task canceled while running must be dead-lettered with reason canceled',
    ).toBe('canceled')
  })

  test('cancel: a canceled chord member fails its chord', async () => {
    const queue = h.queue()
    const gate = deferred()
    const member = defineTask({
      name: 'conf.cancel.member',
      queue,
      input: z.number(),
      output: z.number(),
      handler: async (n) => {
        await gate.promise
        return n
      },
    })
    let calls = 0
    const total = defineTask({
      name: 'conf.cancel.total',
      queue,
      input: z.array(z.number()),
      handler: () => ++calls,
    })
    const app = await h.app({ tasks: [member, total] })
    const r = await app.send(chord([member.s(1), member.s(2)], total.s()))
    const victim = r.children[1]
    if (!victim) throw new Error('chord has no second member')
    await app.cancel(victim.id)
    gate.resolve()
    await app.worker({ concurrency: 2 }).start()
    await expectCode(() => r.get({ timeoutMs: soon }), 'ERR_TASK_FAILED', 'the chord result')
    expect(calls, 'the chord callback must not run when one of its members was canceled').toBe(0)
  })
}
