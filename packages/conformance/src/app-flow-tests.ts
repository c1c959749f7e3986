import { type App, defineTask } from '@errand/core'
import { expect, type TestContext } from 'vitest'
import { z } from 'zod'
import type { AppSuiteContext } from './app-harness.js'
import { CLOCK_SLACK_MS, deferred, expectCode, sleep, withTimeout } from './helpers.js'

const NO_FLOW =
  "the app's result backend has no flow control (capabilities.flowControl false): limits, pause and debounce are refused (see the ERR_NOT_SUPPORTED test)"

/** True when `app`'s backend has flow control: `pausedQueues()` answers instead of ERR_NOT_SUPPORTED. */
async function hasFlow(app: App): Promise<boolean> {
  try {
    await app.pausedQueues()
    return true
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_NOT_SUPPORTED') return false
    throw err
  }
}

/** Skip the test (naming why) unless `app`'s backend has flow control. */
async function needFlow(ctx: TestContext, app: App): Promise<void> {
  if (!(await hasFlow(app))) ctx.skip(NO_FLOW)
}

/** Resolve once `condition()` holds, checking every 10 ms; reject naming `what` after `ms`. */
async function until(condition: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  await withTimeout(
    (async () => {
      while (!(await condition())) await sleep(10)
    })(),
    ms,
    what,
  )
}

/** When a start was admitted, bounded: not before `from`, not after `to` (ms since the epoch). */
interface Span {
  readonly from: number
  readonly to: number
}

/**
 * The shortest time that some `count` of `spans` certainly fit in: the least, over every set of
 * `count` spans, of (latest `to` − earliest `from`). Each admission lies somewhere in its span, so
 * a result under a window means `count` admissions certainly fell within one window; a slow step
 * between admission and handler widens a span and can never raise a false alarm.
 */
function tightest(spans: readonly Span[], count: number): number {
  const byFrom = [...spans].sort((a, b) => a.from - b.from)
  // The `count` smallest `to` among the spans from index i on, kept sorted.
  const smallest: number[] = []
  let best = Number.POSITIVE_INFINITY
  for (let i = byFrom.length - 1; i >= 0; i--) {
    const span = byFrom[i] as Span
    const at = smallest.findIndex((t) => t > span.to)
    smallest.splice(at === -1 ? smallest.length : at, 0, span.to)
    if (smallest.length > count) smallest.pop()
    if (smallest.length === count) best = Math.min(best, (smallest[count - 1] as number) - span.from)
  }
  return best
}

/**
 * The span of each finished task's admission: from its record's `startedAt` (the worker takes it
 * before asking its limits) to `stamps[i]`, taken by its handler.
 */
async function admissionSpans(
  handles: readonly { info(): Promise<{ startedAt?: number } | undefined> }[],
  stamps: readonly number[],
): Promise<Span[]> {
  const records = await Promise.all(handles.map((r) => r.info()))
  return records.map((r, i) => ({ from: r?.startedAt ?? Number.NaN, to: stamps[i] ?? Number.NaN }))
}

/** Counts tasks running at once (overall or per key) and remembers the most seen. */
class RunningCounter {
  readonly #now = new Map<string, number>()
  readonly most = new Map<string, number>()
  enter(key = ''): void {
    const n = (this.#now.get(key) ?? 0) + 1
    this.#now.set(key, n)
    this.most.set(key, Math.max(this.most.get(key) ?? 0, n))
  }
  leave(key = ''): void {
    this.#now.set(key, (this.#now.get(key) ?? 0) - 1)
  }
}

/**
 * Flow control end to end (guide section 24 and "Cancel and dedup"): rate limits (overall and per
 * key), group concurrency (task and queue limits, across two workers), pause and resume, send
 * expiry, dedup modes, `ctx.send` lineage. Tests that need flow control skip, naming why, where
 * the app's backend has none; one test checks what such a backend gives instead.
 */
export function registerAppFlowTests({ test, h, soon }: AppSuiteContext): void {
  test('flow: without flow control, limits, pause and debounce are refused with ERR_NOT_SUPPORTED', async () => {
    const queue = h.queue()
    const limited = defineTask({
      name: 'conf.flow.unsupported.limited',
      queue,
      input: z.number(),
      rateLimit: { max: 5, perMs: 1000 },
      handler: (n) => n,
    })
    let runs = 0
    const plain = defineTask({
      name: 'conf.flow.unsupported.plain',
      queue,
      input: z.number(),
      handler: (n) => {
        runs++
        return n
      },
    })
    const off = { backendCapabilities: { flowControl: false } }
    const limitedApp = await h.app({ tasks: [limited], ...off })
    await expectCode(
      () => limitedApp.worker().start(),
      'ERR_NOT_SUPPORTED',
      'starting a worker for a rate-limited task on a backend without flow control',
    )
    const app = await h.app({ tasks: [plain], ...off })
    await expectCode(() => app.pause(queue), 'ERR_NOT_SUPPORTED', 'app.pause() without flow control')
    await expectCode(() => app.resume(queue), 'ERR_NOT_SUPPORTED', 'app.resume() without flow control')
    await expectCode(() => app.pausedQueues(), 'ERR_NOT_SUPPORTED', 'app.pausedQueues() without flow control')
    await expectCode(
      () => app.send(plain.s(1), { dedupKey: `d-${queue}`, dedupMode: 'debounce', dedupTtlMs: h.ms(500) }),
      'ERR_NOT_SUPPORTED',
      "a send with dedupMode 'debounce' without flow control",
    )
    const queueLimited = await h.app({
      tasks: [plain],
      queues: { [queue]: { concurrency: { max: 1 } } },
      ...off,
    })
    await expectCode(
      () => queueLimited.worker().start(),
      'ERR_NOT_SUPPORTED',
      'starting a worker for a queue with a concurrency limit on a backend without flow control',
    )
    // Keep-first without flow control holds its key for the whole window, finished or not.
    const key = `kf-${queue}`
    const first = await app.send(plain.s(1), { dedupKey: key, dedupTtlMs: h.ms(60_000) })
    await app.worker().start()
    await first.get({ timeoutMs: soon })
    const second = await app.send(plain.s(2), { dedupKey: key, dedupTtlMs: h.ms(60_000) })
    expect(
      second.id,
      "without flow control, keep-first must keep returning the first send's id for the whole dedupTtlMs, even after it finished",
    ).toBe(first.id)
    await sleep(h.ms(200))
    expect(runs, 'without flow control, a keep-first send after the first finished must not run again').toBe(
      1,
    )
  })

  test('flow: a rate limit holds in every window and waiting spends no attempt', async (ctx) => {
    const queue = h.queue()
    const perMs = h.ms(1000)
    const stamps: number[] = []
    const t = defineTask({
      name: 'conf.flow.rate',
      queue,
      input: z.number(),
      rateLimit: { max: 5, perMs },
      handler: (n) => {
        stamps[n] = Date.now()
        return n
      },
    })
    const app = await h.app({ tasks: [t] })
    await needFlow(ctx, app)
    await app.worker({ concurrency: 8 }).start()
    const handles = await Promise.all(Array.from({ length: 12 }, (_, i) => app.send(t.s(i))))
    const outputs = await Promise.all(handles.map((r) => r.get({ timeoutMs: soon * 2 })))
    expect(outputs, 'all 12 rate-limited tasks must succeed with their own input').toEqual(
      Array.from({ length: 12 }, (_, i) => i),
    )
    const spans = await admissionSpans(handles, stamps)
    const first = Math.min(...spans.map((s) => s.from))
    expect(
      tightest(spans, 6),
      `a rate limit of 5 per ${perMs} ms let 6 tasks start within one window (admitted between record startedAt and handler start, ms from the first: ${JSON.stringify(spans.map((s) => [s.from - first, s.to - first]))})`,
    ).toBeGreaterThanOrEqual(perMs - CLOCK_SLACK_MS)
    const records = await Promise.all(handles.map((r) => r.info()))
    expect(
      records.map((r) => r?.attempts),
      'a task that waited for its rate limit must record 1 attempt (deferring spends none)',
    ).toEqual(Array(12).fill(1))
  })

  test('flow: a keyed rate limit gives each key its own window (one busy key starves no other)', async (ctx) => {
    const queue = h.queue()
    const perMs = h.ms(1000)
    const stamps: number[] = []
    const t = defineTask({
      name: 'conf.flow.rate.keyed',
      queue,
      input: z.object({ k: z.string(), i: z.number() }),
      rateLimit: { max: 2, perMs, key: (input) => input.k },
      handler: ({ k, i }) => {
        stamps[i] = Date.now()
        return k
      },
    })
    const app = await h.app({ tasks: [t] })
    await needFlow(ctx, app)
    const handles = []
    // Key a's six first in the queue (i 0-5), key b's two behind them (i 6-7).
    for (let i = 0; i < 8; i++) handles.push(await app.send(t.s({ k: i < 6 ? 'a' : 'b', i })))
    await app.worker({ concurrency: 8 }).start()
    await Promise.all(handles.map((r) => r.get({ timeoutMs: soon * 2 })))
    const spans = await admissionSpans(handles, stamps)
    const a = spans.slice(0, 6)
    const b = spans.slice(6)
    expect(
      tightest(a, 3),
      `key a's limit of 2 per ${perMs} ms let 3 start within one window`,
    ).toBeGreaterThanOrEqual(perMs - CLOCK_SLACK_MS)
    const aFifth = a.map((s) => s.to).sort((x, y) => x - y)[4] as number
    expect(
      Math.max(...b.map((s) => s.to)),
      "key b's two tasks must start before key a's fifth: each key has its own window, and b's budget is not held behind a's backlog",
    ).toBeLessThan(aFifth)
  })

  test('flow: a concurrency limit holds across two workers', async (ctx) => {
    const queue = h.queue()
    const counter = new RunningCounter()
    const t = defineTask({
      name: 'conf.flow.concurrency',
      queue,
      input: z.number(),
      concurrency: { max: 2 },
      handler: async (n) => {
        counter.enter()
        try {
          await sleep(100)
        } finally {
          counter.leave()
        }
        return n
      },
    })
    const apps = [await h.app({ tasks: [t] }), await h.app({ tasks: [t] })]
    await needFlow(ctx, apps[0] as App)
    const handles = await Promise.all(Array.from({ length: 10 }, (_, i) => (apps[0] as App).send(t.s(i))))
    await Promise.all(apps.map((a) => a.worker({ concurrency: 5 }).start()))
    const outputs = await Promise.all(handles.map((r) => r.get({ timeoutMs: soon * 2 })))
    expect(outputs, 'all 10 tasks under a concurrency limit must succeed').toEqual(
      Array.from({ length: 10 }, (_, i) => i),
    )
    expect(
      counter.most.get(''),
      'a concurrency limit of 2 must never let more than 2 run at once across two workers of concurrency 5 (and 2 must run together: 10 were waiting)',
    ).toBe(2)
  })

  test('flow: a per-key queue concurrency limit (createApp queues) holds each key apart', async (ctx) => {
    const queue = h.queue()
    const perKey = new RunningCounter()
    const all = new RunningCounter()
    const t = defineTask({
      name: 'conf.flow.queue.concurrency',
      queue,
      input: z.object({ k: z.string(), i: z.number() }),
      handler: async ({ k, i }) => {
        perKey.enter(k)
        all.enter()
        try {
          await sleep(100)
        } finally {
          perKey.leave(k)
          all.leave()
        }
        return `${k}${i}`
      },
    })
    const queues = {
      [queue]: {
        concurrency: { max: 1, key: (input: unknown) => (input as { k: string }).k, leaseMs: 5000 },
      },
    }
    const apps = [await h.app({ tasks: [t], queues }), await h.app({ tasks: [t], queues })]
    await needFlow(ctx, apps[0] as App)
    const handles = []
    for (const k of ['a', 'b']) {
      for (let i = 0; i < 4; i++) handles.push(await (apps[0] as App).send(t.s({ k, i })))
    }
    await Promise.all(apps.map((a) => a.worker({ concurrency: 4 }).start()))
    await Promise.all(handles.map((r) => r.get({ timeoutMs: soon * 2 })))
    expect(
      [perKey.most.get('a'), perKey.most.get('b')],
      "a queue's per-key concurrency limit of 1 must never let two tasks of one key run at once",
    ).toEqual([1, 1])
    expect(
      all.most.get(''),
      'tasks of different keys must be able to run at the same time (each key has its own slots)',
    ).toBe(2)
  })

  test('flow: a paused queue runs nothing until resumed', async (ctx) => {
    const queue = h.queue()
    let runs = 0
    const t = defineTask({
      name: 'conf.flow.pause',
      queue,
      input: z.number(),
      handler: (n) => {
        runs++
        return n
      },
    })
    const app = await h.app({ tasks: [t] })
    await needFlow(ctx, app)
    try {
      await app.pause(queue)
      expect(await app.pausedQueues(), 'pausedQueues() must list a queue while it is paused').toContain(queue)
      const handles = await Promise.all([0, 1, 2].map((i) => app.send(t.s(i))))
      await app.worker({ concurrency: 3 }).start()
      // What is tested is that nothing happens for a while: this wait is the test.
      await sleep(h.ms(1500))
      expect(runs, 'no task may run from a paused queue (3 were sent, a worker was running for 1.5 s)').toBe(
        0,
      )
      await app.resume(queue)
      expect(await app.pausedQueues(), 'pausedQueues() must not list a resumed queue').not.toContain(queue)
      expect(
        await Promise.all(handles.map((r) => r.get({ timeoutMs: soon }))),
        'the three tasks sent while paused must all run once the queue is resumed',
      ).toEqual([0, 1, 2])
      expect(runs, 'each of the three tasks must have run once').toBe(3)
    } finally {
      await app.resume(queue).catch(() => {})
    }
  })

  test('flow: a task running when its queue is paused finishes; the next waits for resume', async (ctx) => {
    const queue = h.queue()
    const gate = deferred()
    const started = deferred()
    const ran: number[] = []
    const t = defineTask({
      name: 'conf.flow.pause.running',
      queue,
      input: z.number(),
      handler: async (n) => {
        ran.push(n)
        if (n === 1) {
          started.resolve()
          await gate.promise
        }
        return n
      },
    })
    const app = await h.app({ tasks: [t] })
    await needFlow(ctx, app)
    const pollMs = h.ms(100)
    try {
      await app.worker({ concurrency: 2, pausePollMs: pollMs }).start()
      const running = await app.send(t.s(1))
      await withTimeout(started.promise, soon, 'the first task to start')
      await app.pause(queue)
      // Give the worker several polls to see the pause (time is what is tested here).
      await sleep(pollMs * 4)
      const waiting = await app.send(t.s(2))
      gate.resolve()
      expect(
        await running.get({ timeoutMs: soon }),
        'a task already running when its queue was paused must finish and store its result',
      ).toBe(1)
      await sleep(h.ms(600))
      expect(ran, 'a task sent after the pause must not run while the queue is paused').toEqual([1])
      await app.resume(queue)
      expect(await waiting.get({ timeoutMs: soon }), 'the waiting task must run after resume').toBe(2)
    } finally {
      gate.resolve()
      await app.resume(queue).catch(() => {})
    }
  })

  test('flow: a task not started before expiresInMs is dead-lettered as expired', async (ctx) => {
    const queue = h.queue()
    const ran: string[] = []
    const t = defineTask({
      name: 'conf.flow.expires',
      queue,
      input: z.string(),
      handler: (s) => {
        ran.push(s)
        return s
      },
    })
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
    const ran: string[] = []
    const t = defineTask({
      name: 'conf.flow.dedup.modes',
      queue,
      input: z.string(),
      handler: (s) => {
        ran.push(s)
        return s
      },
    })
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

  test('flow: a limit key function that throws dead-letters the task as invalid-input', async (ctx) => {
    const queue = h.queue()
    let runs = 0
    const t = defineTask({
      name: 'conf.flow.badkey',
      queue,
      input: z.number(),
      rateLimit: {
        max: 5,
        perMs: 1000,
        key: () => {
          throw new Error('no key for this input')
        },
      },
      handler: () => ++runs,
    })
    const app = await h.app({ tasks: [t] })
    await needFlow(ctx, app)
    await app.worker().start()
    const r = await app.send(t.s(1))
    await expectCode(
      () => r.get({ timeoutMs: soon }),
      'ERR_TASK_FAILED',
      'get() of a task whose limit key threw',
    )
    await until(async () => (await app.deadLetters(queue).list()).length > 0, soon, 'the dead letter')
    expect(
      (await app.deadLetters(queue).list()).map((d) => d.reason),
      'a task whose limit key function throws must be dead-lettered as invalid-input',
    ).toEqual(['invalid-input'])
    expect(runs, 'a task whose limit key function throws must never run').toBe(0)
    expect((await r.info())?.attempts ?? 0, 'a bad key must not be retried').toBeLessThanOrEqual(1)
  })
}
