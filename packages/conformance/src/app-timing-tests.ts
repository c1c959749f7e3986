import { defineTask } from '@errand/core'
import { expect } from 'vitest'
import { z } from 'zod'
import type { AppSuiteContext } from './app-harness.js'
import { CLOCK_SLACK_MS, deferred, expectCode, withTimeout } from './helpers.js'

/** Delays (native and hopped), ETA, priorities. */
export function registerAppTimingTests({ test, h, soon }: AppSuiteContext): void {
  test('countdownMs delays a task: never early, on time within a tolerance', async () => {
    const queue = h.queue()
    const ran = deferred<number>()
    const t = defineTask({
      name: 'conf.delay',
      queue,
      input: z.null(),
      handler: () => void ran.resolve(Date.now()),
    })
    const app = await h.app({ tasks: [t] })
    await app.worker().start()
    const delay = h.ms(400)
    const sentAt = Date.now()
    await app.send(t.s(null), { countdownMs: delay })
    const at = await withTimeout(ran.promise, soon + delay, 'the delayed task')
    expect(at - sentAt, 'a task sent with countdownMs ran before the delay').toBeGreaterThanOrEqual(
      delay - CLOCK_SLACK_MS,
    )
    expect(
      at - sentAt,
      'a task sent with countdownMs ran more than 1.5 s (scaled) after the delay',
    ).toBeLessThan(delay + h.ms(1500))
  })

  test('a delay longer than the broker allows is hopped and still never runs early', async () => {
    const queue = h.queue()
    const ran = deferred<number>()
    const t = defineTask({
      name: 'conf.hop',
      queue,
      input: z.null(),
      handler: () => void ran.resolve(Date.now()),
    })
    // Core sees a broker that allows 150 ms at most, so a 700 ms delay takes several hops.
    const app = await h.app({ tasks: [t], capabilities: { maxDelayMs: h.ms(150) } })
    await app.worker().start()
    const delay = h.ms(700)
    const eta = new Date(Date.now() + delay)
    await app.send(t.s(null), { eta })
    const at = await withTimeout(ran.promise, soon + delay, 'the hopped task')
    expect(
      at,
      "a task whose delay was split into hops (over the broker's maxDelayMs) ran before its eta",
    ).toBeGreaterThanOrEqual(eta.getTime() - CLOCK_SLACK_MS)
    expect(
      at - eta.getTime(),
      'a task whose delay was split into hops ran more than 1.5 s (scaled) after its eta',
    ).toBeLessThan(h.ms(1500))
  })

  test('priorities: higher first, or refused with ERR_NOT_SUPPORTED when the broker has none', async () => {
    const queue = h.queue()
    const order: number[] = []
    const all = deferred()
    const t = defineTask({
      name: 'conf.prio',
      queue,
      input: z.number(),
      handler: (n) => {
        order.push(n)
        if (order.length === 3) all.resolve()
      },
    })
    const app = await h.app({ tasks: [t] })
    const max = (await app.connect()).broker.capabilities.maxPriority
    if (max === 0) {
      await expectCode(
        () => app.send(t.s(1, { priority: 1 })),
        'ERR_NOT_SUPPORTED',
        'a priority on a broker without',
      )
      return
    }
    await app.send(t.s(0))
    await app.send(t.s(1, { priority: 1 }))
    await app.send(t.s(2, { priority: max }))
    await app.worker({ concurrency: 1 }).start()
    await withTimeout(all.promise, soon, 'three tasks')
    expect(order, 'with one worker at concurrency 1, tasks must run highest priority first').toEqual([
      2, 1, 0,
    ])
    await expectCode(
      () => app.send(t.s(3, { priority: max + 1 })),
      'ERR_NOT_SUPPORTED',
      'a priority above the maximum',
    )
  })
}
