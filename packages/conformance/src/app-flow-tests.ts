import { type App, defineTask } from '@errand/core'
import { expect } from 'vitest'
import { z } from 'zod'
import type { AppSuiteContext } from './app-harness.js'
import { needFlow, until } from './flow-test-helpers.js'
import { CLOCK_SLACK_MS, deferred, expectCode, sleep, withTimeout } from './helpers.js'

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
