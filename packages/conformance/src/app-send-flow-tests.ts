import { defineTask } from '@errand/core'
import { expect } from 'vitest'
import { z } from 'zod'
import type { AppSuiteContext } from './app-harness.js'
import { hasFlow, needFlow, until } from './flow-test-helpers.js'
import { sleep } from './helpers.js'

/** A task on `queue` that returns its input and records it in `ran`, in the order run. */
function echoTask(name: string, queue: string) {
  const ran: string[] = []
  const t = defineTask({
    name,
    queue,
    input: z.string(),
    handler: (s) => {
      ran.push(s)
      return s
    },
  })
  return { t, ran }
}

/**
 * The app suite's tests of send options that need flow control or lineage: expiry, the dedup
 * modes (keep-first, throttle, debounce) and child tasks sent with `ctx.send`.
 */
export function registerAppSendFlowTests({ test, h, soon }: AppSuiteContext): void {
  test('flow: a task not started before expiresInMs is dead-lettered as expired', async (ctx) => {
    const queue = h.queue()
    const { t, ran } = echoTask('conf.flow.expires', queue)
    const app = await h.app({ tasks: [t] })
    await needFlow(ctx, app)
    const expiring = await app.send(t.s('short'), { expiresInMs: h.ms(200) })
    const lasting = await app.send(t.s('long'), { expiresInMs: h.ms(60_000) })
    // No worker until well past the first task's expiry: the delay is what is tested.
    await sleep(h.ms(600))
    await app.worker().start()
    expect(
      await lasting.get({ timeoutMs: soon }),
      'a task sent with a long expiresInMs must run normally',
    ).toBe('long')
    let error: unknown
    try {
      await expiring.get({ timeoutMs: soon })
    } catch (err) {
      error = err
    }
    expect(error, 'the handle of a task that expired before any worker started it must reject').toBeDefined()
    const e = error as { code?: string; message?: string; remote?: { code?: string } }
    expect(
      [e.code, e.remote?.code].includes('ERR_TIMEOUT') && /expired/.test(String(e.message)),
      `the rejection of an expired task must say it expired with code ERR_TIMEOUT (got ${e.code}: ${e.message})`,
    ).toBe(true)
    await until(async () => (await app.deadLetters(queue).list()).length > 0, soon, 'the dead letter')
    expect(
      (await app.deadLetters(queue).list()).map((d) => d.reason),
      'an expired task must be dead-lettered with reason expired',
    ).toEqual(['expired'])
    expect(ran, 'an expired task must never run').toEqual(['long'])
  })

  test('flow: dedupMode keep-first starts a new task once the first finished; throttle holds the window', async () => {
    const queue = h.queue()
    const { t, ran } = echoTask('conf.flow.dedup.modes', queue)
    const app = await h.app({ tasks: [t] })
    const flow = await hasFlow(app)
    const ttl = h.ms(60_000)
    const keepKey = `kf-${queue}`
    // No worker yet: the first task is certainly not finished when the second send comes.
    const first = await app.send(t.s('kf1'), { dedupKey: keepKey, dedupTtlMs: ttl })
    const during = await app.send(t.s('kf-during'), {
      dedupKey: keepKey,
      dedupTtlMs: ttl,
      dedupMode: 'keep-first',
    })
    await app.worker().start()
    expect(
      [during.id, await during.get({ timeoutMs: soon })],
      "keep-first: a send while the first is not finished must return the first send's handle (and result)",
    ).toEqual([first.id, 'kf1'])
    const after = await app.send(t.s('kf2'), { dedupKey: keepKey, dedupTtlMs: ttl, dedupMode: 'keep-first' })
    if (flow) {
      expect(
        after.id,
        'keep-first: a send after the first task finished must start a new task (new id)',
      ).not.toBe(first.id)
      expect(
        await after.get({ timeoutMs: soon }),
        'keep-first: the new task must run with its own input',
      ).toBe('kf2')
    } else {
      expect(
        after.id,
        "keep-first without flow control: the key is held for the whole dedupTtlMs (the first send's id)",
      ).toBe(first.id)
    }
    const throttleKey = `th-${queue}`
    const t1 = await app.send(t.s('th1'), { dedupKey: throttleKey, dedupTtlMs: ttl, dedupMode: 'throttle' })
    expect(await t1.get({ timeoutMs: soon }), 'throttle: the first send must run').toBe('th1')
    const t2 = await app.send(t.s('th2'), { dedupKey: throttleKey, dedupTtlMs: ttl, dedupMode: 'throttle' })
    expect(
      t2.id,
      "throttle: a send within the window must return the first send's id even after it finished",
    ).toBe(t1.id)
    await sleep(h.ms(300))
    expect(ran, 'only kf1, (kf2 with flow control) and th1 may run: a deduplicated send ran').toEqual(
      flow ? ['kf1', 'kf2', 'th1'] : ['kf1', 'th1'],
    )
  })

  test('flow: dedupMode debounce runs once, with the last input, after the sends stop', async (ctx) => {
    const queue = h.queue()
    const ran: number[] = []
    const t = defineTask({
      name: 'conf.flow.debounce',
      queue,
      input: z.number(),
      output: z.number(),
      handler: (n) => {
        ran.push(n)
        return n * 10
      },
    })
    const app = await h.app({ tasks: [t] })
    await needFlow(ctx, app)
    await app.worker({ concurrency: 3 }).start()
    const key = `db-${queue}`
    const quiet = h.ms(500)
    const handles = []
    for (const n of [1, 2, 3]) {
      if (n > 1) await sleep(h.ms(100))
      handles.push(await app.send(t.s(n), { dedupKey: key, dedupMode: 'debounce', dedupTtlMs: quiet }))
    }
    expect(
      new Set(handles.map((r) => r.id)).size,
      'every send of one debounce burst must get the same task id',
    ).toBe(1)
    expect(
      await Promise.all(handles.map((r) => r.get({ timeoutMs: soon }))),
      "every handle of the burst must resolve with the result of the last send's input",
    ).toEqual([30, 30, 30])
    // Replaced sends come due before the last: give any stray run time to show up.
    await sleep(quiet)
    expect(ran, 'a debounced burst must run the handler once, with the last input').toEqual([3])
  })

  test('flow: ctx.send records parent and root on children and grandchildren', async () => {
    const queue = h.queue()
    const grandchild = defineTask({
      name: 'conf.flow.lineage.grandchild',
      queue,
      input: z.null(),
      handler: () => 'g',
    })
    const child = defineTask({
      name: 'conf.flow.lineage.child',
      queue,
      input: z.null(),
      output: z.string(),
      handler: async (_i, ctx) => (await ctx.send(grandchild.s(null))).id,
    })
    const parent = defineTask({
      name: 'conf.flow.lineage.parent',
      queue,
      input: z.null(),
      output: z.string(),
      handler: async (_i, ctx) => (await ctx.send(child.s(null))).id,
    })
    const app = await h.app({ tasks: [parent, child, grandchild] })
    await app.worker({ concurrency: 3 }).start()
    const p = await app.send(parent.s(null))
    const childId = await p.get({ timeoutMs: soon })
    const grandchildId = await app.result<string>(childId).get({ timeoutMs: soon })
    expect(await app.result(grandchildId).get({ timeoutMs: soon }), 'the grandchild must run').toBe('g')
    const [pr, cr, gr] = await Promise.all([
      p.info(),
      app.result(childId).info(),
      app.result(grandchildId).info(),
    ])
    expect(
      { root: pr?.root, parent: pr?.parent, queue: pr?.queue },
      'a task sent by app.send is its own root: its record has no root and no parent, and names its queue',
    ).toEqual({ root: undefined, parent: undefined, queue })
    expect(
      { root: cr?.root, parent: cr?.parent, queue: cr?.queue },
      "a child sent with ctx.send must record the sender as parent and the sender's root (the sender) as root",
    ).toEqual({ root: p.id, parent: p.id, queue })
    expect(
      { root: gr?.root, parent: gr?.parent },
      'a grandchild must record the child as parent and the first task as root',
    ).toEqual({ root: p.id, parent: childId })
  })
}
