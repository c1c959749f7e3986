import {
  type FlowControlStore,
  hasFlowControl,
  isErrandError,
  MAX_FLOW_KEY_LENGTH,
  type ResultBackend,
} from '@errand/core'
import { expect, type TestContext } from 'vitest'
import type { BackendSuiteContext } from './harness.js'
import { CLOCK_SLACK_MS, caught, expectCode, sleep, uniqueName } from './helpers.js'

type Backend = ResultBackend & FlowControlStore

/** Long enough never to run out during a test. */
const LONG_MS = 60_000

const OFF = 'the backend has no flow control (capabilities.flowControl false)'

async function openFlow(open: () => Promise<ResultBackend>): Promise<Backend> {
  const backend = await open()
  if (!hasFlowControl(backend)) throw new Error('expected a backend with the flowControl capability')
  return backend
}

/** Skips the test (with the reason) unless the backend has the flowControl capability. */
async function requireFlow(h: BackendSuiteContext['h'], ctx: TestContext): Promise<void> {
  const probe = await h.open()
  const on = hasFlowControl(probe)
  await h.close(probe)
  if (!on) ctx.skip(OFF)
}

/** Asserts that `call` rejects (or throws) a TypeError or an ErrandError naming `argument`. */
async function expectBadArgument(
  call: () => Promise<unknown>,
  argument: string,
  what: string,
): Promise<void> {
  const { threw, error } = await caught(call)
  expect(threw, `${what} must reject (bad ${argument})`).toBe(true)
  expect(
    error instanceof TypeError || isErrandError(error),
    `${what} must reject with a TypeError or an ErrandError, got ${String(error)}`,
  ).toBe(true)
  expect(
    new RegExp(`\\b${argument}\\b`).test((error as Error).message),
    `${what}: the error message must name the argument ${argument}, got: ${(error as Error).message}`,
  ).toBe(true)
}

/** One successful take: the store recorded it somewhere between `before` and `after` (local ms). */
interface Take {
  readonly before: number
  readonly after: number
}

/**
 * When the takes of the race start (ms, unscaled; 64 in all, alternating two instances): one
 * alone, then bursts of 15 at 400 and 520 ms, then bursts of 3 every 90 ms. A correct sliding
 * window lets 9 of the burst at 400 through and 1 at 520 (once the lone start has left). A fixed
 * window (reset every `perMs`, on the clock or from its first start) lets 10 through at 520 as
 * well, a token bucket refills between bursts: either puts 11 starts within about 150 ms.
 */
function raceSchedule(): number[] {
  const offsets = [0]
  for (const at of [400, 520]) for (let i = 0; i < 15; i++) offsets.push(at)
  for (let burst = 0; burst < 11; burst++) for (let i = 0; i < 3; i++) offsets.push(610 + burst * 90)
  return offsets
}

/**
 * The shortest time that surely holds `count` of `takes`: the least, over every choice of
 * `count` takes, of (latest `after`) − (earliest `before`). Infinity when there are fewer takes.
 * Each take was recorded within its own [before, after], so a store keeping at most `count - 1`
 * starts per window of W ms never yields less than W (clocks run at the same rate).
 */
function tightestSpan(takes: readonly Take[], count: number): number {
  const byAfter = [...takes].sort((x, y) => x.after - y.after)
  let best = Number.POSITIVE_INFINITY
  for (let j = count - 1; j < byAfter.length; j++) {
    // Among the takes answered by byAfter[j], the `count` that started latest.
    const befores = byAfter
      .slice(0, j + 1)
      .map((t) => t.before)
      .sort((x, y) => y - x)
    best = Math.min(best, byAfter[j]!.after - befores[count - 1]!)
  }
  return best
}

/**
 * Flow control (`capabilities.flowControl`, `FlowControlStore`): sliding-window rate limits,
 * group concurrency slots with leases, paused queues and `putValue`. Where the capability is off,
 * every test but the one checking the flag skips with the reason.
 */
export function registerFlowTests({ test: register, h }: BackendSuiteContext): void {
  register('flow control: the capability flag comes with all six FlowControlStore methods', async () => {
    const backend = await h.open()
    if (backend.capabilities.flowControl === true)
      expect(
        hasFlowControl(backend),
        'capabilities.flowControl is true, so takeRate, acquireSlot, releaseSlot, setPaused, pausedQueues and putValue must all be functions',
      ).toBe(true)
    else
      expect(
        backend.capabilities.flowControl,
        'capabilities.flowControl must be a boolean (false when the backend has no flow control)',
      ).toBe(false)
  })

  // Every other test needs the capability: where it is off, it says so and skips.
  const test = (name: string, body: (ctx: TestContext) => Promise<void>, timeoutMs?: number) =>
    register(
      name,
      async (ctx) => {
        await requireFlow(h, ctx)
        await body(ctx)
      },
      timeoutMs,
    )

  test('flow control: takeRate allows max starts per window, then says how long to wait', async () => {
    const a = await openFlow(() => h.open())
    const b = await openFlow(() => h.open())
    const key = uniqueName('conf-rate')
    const perMs = h.ms(1000)
    for (let i = 0; i < 5; i++)
      expect(
        await (i % 2 === 0 ? a : b).takeRate(key, 5, perMs),
        `take ${i + 1} of 5 (max 5 per ${perMs} ms, alternating two instances) must be allowed: 0`,
      ).toBe(0)
    let wait = 0
    for (let i = 0; i < 3; i++) {
      wait = await (i % 2 === 0 ? b : a).takeRate(key, 5, perMs)
      expect(
        wait > 0 && wait <= perMs,
        `take ${6 + i} must be refused with a wait in (0, ${perMs}] ms (the limit is shared by both instances), got ${wait}`,
      ).toBe(true)
    }
    expect(
      await a.takeRate(uniqueName('conf-rate'), 5, perMs),
      "another key must not be limited by this key's starts",
    ).toBe(0)
    await sleep(wait + CLOCK_SLACK_MS)
    expect(
      await b.takeRate(key, 5, perMs),
      'after waiting the returned time, a take must be allowed again (the oldest start left the window; refused takes must not have been recorded)',
    ).toBe(0)
    const again = await a.takeRate(key, 5, perMs)
    expect(
      again >= 0 && again <= perMs,
      `takeRate must return 0 or a wait in (0, ${perMs}], got ${again}`,
    ).toBe(true)
  })

  test(
    'flow control: takeRate never exceeds max in any sliding window (two instances racing)',
    async () => {
      const instances = [await openFlow(() => h.open()), await openFlow(() => h.open())]
      // Warm both connections, so the first timed take is not slowed by connection setup.
      for (const instance of instances) await instance.pausedQueues()
      const key = uniqueName('conf-rate')
      const max = 10
      const perMs = h.ms(500)
      const toleranceMs = h.ms(20)
      const offsets = raceSchedule().map((ms) => h.ms(ms))
      const taken: Take[] = []
      let refused = 0
      const start = Date.now()
      await Promise.all(
        offsets.map(async (offset, i) => {
          await sleep(start + offset + Math.random() * h.ms(10) - Date.now())
          const before = Date.now()
          const wait = await instances[i % 2]!.takeRate(key, max, perMs)
          if (wait === 0) taken.push({ before, after: Date.now() })
          else {
            refused++
            expect(
              wait > 0 && wait <= perMs,
              `a refused take must return a wait in (0, ${perMs}] ms, got ${wait}`,
            ).toBe(true)
          }
        }),
      )
      const span = tightestSpan(taken, max + 1)
      expect(
        span >= perMs - toleranceMs,
        `${max + 1} of ${taken.length} successful takes were recorded within ${span} ms (each counted anywhere between its call and its answer), but at most ${max} may start in any ${perMs} ms window`,
      ).toBe(true)
      expect(
        taken.length,
        `at least 20 of ${offsets.length} takes over ${offsets.at(-1)} ms must succeed with max ${max} per ${perMs} ms (${refused} refused)`,
      ).toBeGreaterThanOrEqual(20)
    },
    h.ms(30_000),
  )

  test('flow control: acquireSlot gives max holders a slot; renewal and release', async () => {
    const a = await openFlow(() => h.open())
    const b = await openFlow(() => h.open())
    const key = uniqueName('conf-slot')
    expect(await a.acquireSlot(key, 'holder-a', 2, LONG_MS), 'the first of 2 slots must be free for a').toBe(
      true,
    )
    expect(await b.acquireSlot(key, 'holder-b', 2, LONG_MS), 'the second of 2 slots must be free for b').toBe(
      true,
    )
    expect(
      await a.acquireSlot(key, 'holder-c', 2, LONG_MS),
      'with both slots held (by a and b), c must be refused',
    ).toBe(false)
    expect(
      await b.acquireSlot(key, 'holder-a', 2, LONG_MS),
      'a holder that already holds a slot must get true again (renewal), also from another instance',
    ).toBe(true)
    expect(
      await a.acquireSlot(key, 'holder-c', 2, LONG_MS),
      "a's renewal must not take a third slot: c is still refused",
    ).toBe(false)
    await b.releaseSlot(key, 'holder-a')
    expect(
      await a.acquireSlot(key, 'holder-c', 2, LONG_MS),
      "after a's slot is released (on another instance), c must get it",
    ).toBe(true)
    await a.releaseSlot(key, 'holder-a')
    await a.releaseSlot(key, 'holder-nobody')
    await b.releaseSlot(uniqueName('conf-slot'), 'holder-b')
    expect(
      await b.acquireSlot(key, 'holder-d', 2, LONG_MS),
      'releasing holders that hold nothing (here or under another key) must not free a slot: b and c still hold both',
    ).toBe(false)
    expect(
      await a.acquireSlot(key, 'holder-b', 2, LONG_MS),
      'b must still hold its slot after the harmless releases',
    ).toBe(true)
    expect(
      await a.acquireSlot(uniqueName('conf-slot'), 'holder-d', 2, LONG_MS),
      "another key's slots must not be taken by this key's holders",
    ).toBe(true)
  })

  test('flow control: acquireSlot under contention grants exactly max slots', async () => {
    const a = await openFlow(() => h.open())
    const b = await openFlow(() => h.open())
    const key = uniqueName('conf-slot')
    const holders = Array.from({ length: 20 }, (_, i) => `holder-${i}`)
    const granted = await Promise.all(
      holders.map((holder, i) => (i % 2 === 0 ? a : b).acquireSlot(key, holder, 3, LONG_MS)),
    )
    expect(
      granted.filter(Boolean),
      'exactly 3 of 20 holders racing for 3 slots on two instances may get one',
    ).toHaveLength(3)
    for (const [i, holder] of holders.entries())
      expect(
        await a.acquireSlot(key, holder, 3, LONG_MS),
        `asking again, ${holder} must get ${granted[i]} as before (winners renew, losers stay out)`,
      ).toBe(granted[i])
  })

  test('flow control: a slot whose lease ran out is free again; a renewed one is kept', async () => {
    const a = await openFlow(() => h.open())
    const b = await openFlow(() => h.open())
    const key = uniqueName('conf-slot')
    const leaseMs = h.ms(300)
    expect(await a.acquireSlot(key, 'holder-a', 2, leaseMs), 'a must get the first of 2 slots').toBe(true)
    expect(await b.acquireSlot(key, 'holder-b', 2, leaseMs), 'b must get the second of 2 slots').toBe(true)
    expect(await a.acquireSlot(key, 'holder-c', 2, leaseMs), 'c must be refused while both are held').toBe(
      false,
    )
    // b renews at about 100 and 200 ms (its lease then runs to about 500 ms); a never does (300 ms).
    for (let i = 0; i < 2; i++) {
      await sleep(h.ms(100))
      expect(
        await b.acquireSlot(key, 'holder-b', 2, leaseMs),
        `b's renewal ${i + 1} (every ${h.ms(100)} ms, lease ${leaseMs} ms) must keep its slot`,
      ).toBe(true)
    }
    await sleep(h.ms(200))
    expect(
      await a.acquireSlot(key, 'holder-c', 2, leaseMs),
      `a's slot, never renewed, must be free about ${h.ms(400)} ms after its ${leaseMs} ms lease began: c gets it`,
    ).toBe(true)
    expect(
      await b.acquireSlot(key, 'holder-d', 2, leaseMs),
      "b's slot must be kept past its first lease (300 ms) because b renewed it: with b and c holding both slots, d is refused",
    ).toBe(false)
    expect(
      await a.acquireSlot(key, 'holder-a', 2, leaseMs),
      'a, whose lease ran out, must not get a slot back while b and c hold both',
    ).toBe(false)
    expect(await b.acquireSlot(key, 'holder-b', 2, leaseMs), 'b must still hold its slot').toBe(true)
  })

  test('flow control: setPaused and pausedQueues, shared by every instance', async () => {
    const a = await openFlow(() => h.open())
    const b = await openFlow(() => h.open())
    const base = uniqueName('conf-pause')
    const [qa, qb, qc] = [`${base}-a`, `${base}-b`, `${base}-c`]
    // The store may be shared with other tests: look only at this test's queues.
    const mine = async (backend: Backend) => (await backend.pausedQueues()).filter((q) => q.startsWith(base))
    try {
      expect(await mine(a), 'no queue of this test is paused yet').toEqual([])
      await a.setPaused(qb, true)
      await b.setPaused(qa, true)
      expect(
        await mine(a),
        'both paused queues must be listed, sorted, whichever instance paused them',
      ).toEqual([qa, qb])
      await a.setPaused(qb, true)
      expect(await mine(b), 'pausing a paused queue again must list it once').toEqual([qa, qb])
      await b.setPaused(qb, false)
      expect(await mine(a), 'resuming b (on the other instance) must remove it from the list').toEqual([qa])
      await a.setPaused(qc, false)
      await a.setPaused(qb, false)
      expect(await mine(b), 'resuming a queue that is not paused must change nothing').toEqual([qa])
      const all = await b.pausedQueues()
      expect(new Set(all).size, 'pausedQueues must not list a queue twice').toBe(all.length)
      expect(all, 'pausedQueues must be sorted in JavaScript string order').toEqual([...all].sort())
    } finally {
      for (const q of [qa, qb, qc]) await a.setPaused(q, false)
    }
  })

  test('flow control: putValue overwrites a claim, shares its key space and expires after ttlMs', async () => {
    const a = await openFlow(() => h.open())
    const b = await openFlow(() => h.open())
    const key = uniqueName('conf-put')
    const ttlMs = h.ms(500)
    expect(await a.setIfAbsent(key, 'claim', LONG_MS), 'setIfAbsent on a free key must win').toBe(true)
    await b.putValue(key, 'debounced', ttlMs)
    expect(await a.getValue(key), "getValue must read putValue's value, which replaced the claim").toBe(
      'debounced',
    )
    expect(await a.setIfAbsent(key, 'late', LONG_MS), 'setIfAbsent on a key set by putValue must lose').toBe(
      false,
    )
    expect(await b.getValue(key), 'a losing setIfAbsent must not change the value putValue wrote').toBe(
      'debounced',
    )
    const fresh = uniqueName('conf-put')
    await a.putValue(fresh, 'new', LONG_MS)
    expect(await b.getValue(fresh), 'putValue on a free key must set it').toBe('new')
    await sleep(ttlMs + h.ms(300))
    expect(
      await a.getValue(key),
      "the value must expire after putValue's ttlMs (replacing the claim's longer ttl)",
    ).toBeUndefined()
    expect(await a.setIfAbsent(key, 'after', LONG_MS), 'the expired key must be free to claim again').toBe(
      true,
    )
  })

  test('flow control: calls after close reject with ERR_CLOSED', async () => {
    const backend = await openFlow(() => h.open())
    await h.close(backend)
    const calls: [string, (b: Backend) => Promise<unknown>][] = [
      ['takeRate', (b) => b.takeRate('k', 1, 1000)],
      ['acquireSlot', (b) => b.acquireSlot('k', 'h', 1, 1000)],
      ['releaseSlot', (b) => b.releaseSlot('k', 'h')],
      ['setPaused', (b) => b.setPaused('q', true)],
      ['pausedQueues', (b) => b.pausedQueues()],
      ['putValue', (b) => b.putValue('k', 'v', 1000)],
    ]
    for (const [name, call] of calls) await expectCode(() => call(backend), 'ERR_CLOSED', name)
  })

  test('flow control: bad arguments are refused, naming the argument', async () => {
    const backend = await openFlow(() => h.open())
    const key = uniqueName('conf-bad')
    const longest = key + 'k'.repeat(MAX_FLOW_KEY_LENGTH - key.length)
    const tooLong = `${longest}k`
    await expectBadArgument(() => backend.takeRate(key, 0, 1000), 'max', 'takeRate with max 0')
    await expectBadArgument(() => backend.takeRate(key, 5, -1), 'perMs', 'takeRate with perMs -1')
    await expectBadArgument(
      () => backend.takeRate(tooLong, 5, 1000),
      'key',
      `takeRate with a key of ${tooLong.length} characters`,
    )
    await expectBadArgument(() => backend.acquireSlot(key, 'h', 0, 1000), 'max', 'acquireSlot with max 0')
    await expectBadArgument(
      () => backend.acquireSlot(tooLong, 'h', 1, 1000),
      'key',
      `acquireSlot with a key of ${tooLong.length} characters`,
    )
    expect(
      await backend.takeRate(longest, 5, 1000),
      `a key of exactly MAX_FLOW_KEY_LENGTH (${MAX_FLOW_KEY_LENGTH}) characters must be accepted`,
    ).toBe(0)
    expect(
      await backend.acquireSlot(longest, 'h', 1, 1000),
      `acquireSlot must accept a key of exactly MAX_FLOW_KEY_LENGTH (${MAX_FLOW_KEY_LENGTH}) characters`,
    ).toBe(true)
    await backend.releaseSlot(longest, 'h')
  })
}
