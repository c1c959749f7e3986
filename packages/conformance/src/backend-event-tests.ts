import {
  type BackendEventSubscription,
  createApp,
  type EventStore,
  hasEventStore,
  MemoryBroker,
  MemoryStore,
  type ResultBackend,
  type TaskEvent,
  type TaskEventType,
} from '@errand/core'
import { expect, type TestContext } from 'vitest'
import type { BackendSuiteContext } from './harness.js'
import { expectCode, uniqueName, withTimeout } from './helpers.js'

/** What the event tests get besides the suite's context. */
export interface EventTestOptions {
  /** Events per queue the factory's backends keep. */
  readonly retention: number
}

type Backend = ResultBackend & EventStore

function event(queue: string, id: string, type: TaskEventType, n: number): TaskEvent {
  const base = { id, task: 'conf.events', queue, attempt: 1, at: Date.now() + n, root: id }
  if (type === 'progress') return { ...base, type, value: { n } }
  if (type === 'failed')
    return { ...base, type, willRetry: false, error: { name: 'Error', message: `e${n}` } }
  if (type === 'succeeded') return { ...base, type, durationMs: n }
  return { ...base, type: type as 'started' }
}

/** Collects what a subscription delivers and resolves `until` once `count` have arrived. */
class Collector {
  readonly events: TaskEvent[] = []
  #want = Number.POSITIVE_INFINITY
  #resolve: (() => void) | undefined
  readonly push = (e: TaskEvent): void => {
    this.events.push(e)
    if (this.events.length >= this.#want) this.#resolve?.()
  }
  until(count: number, ms: number, what: string): Promise<void> {
    if (this.events.length >= count) return Promise.resolve()
    this.#want = count
    return withTimeout(
      new Promise<void>((resolve) => {
        this.#resolve = resolve
      }),
      ms,
      `${what} (${this.events.length} of ${count} arrived)`,
    )
  }
}

async function openEvents(open: () => Promise<ResultBackend>): Promise<Backend> {
  const backend = await open()
  if (!hasEventStore(backend)) throw new Error('expected a backend with the events capability')
  return backend
}

const OFF = 'capabilities.events is off (the refusal test covers it)'

/** Skips the test (with the reason) unless the backend has the events capability. */
async function requireEvents(h: BackendSuiteContext['h'], ctx: TestContext): Promise<void> {
  const probe = await h.open()
  const on = hasEventStore(probe)
  await h.close(probe)
  if (!on) ctx.skip(OFF)
}

/**
 * The events capability (`capabilities.events`): publish, subscribe, recent history. Where the
 * capability is off, one test checks that `app.events()` refuses the backend with
 * `ERR_NOT_SUPPORTED` instead.
 */
export function registerEventTests(
  { test: register, h, soon }: BackendSuiteContext,
  { retention }: EventTestOptions,
): void {
  register(
    'events: app.events() refuses a backend without the events capability (ERR_NOT_SUPPORTED)',
    async (ctx) => {
      const backend = await h.open()
      if (hasEventStore(backend)) ctx.skip('capabilities.events is on')
      expect(
        backend.capabilities.events,
        'capabilities.events is true but publishEvents, subscribeEvents or recentEvents is missing: declare the flag only with all three',
      ).toBe(false)
      const app = createApp({ broker: new MemoryBroker({ store: new MemoryStore() }), backend })
      try {
        await expectCode(() => app.events(), 'ERR_NOT_SUPPORTED', 'app.events()')
        await expectCode(() => app.recentEvents('q'), 'ERR_NOT_SUPPORTED', 'app.recentEvents()')
      } finally {
        await app.close()
      }
    },
  )

  // Every other test needs the capability: where it is off, it says so and skips.
  const test = (name: string, body: (ctx: TestContext) => Promise<void>) =>
    register(name, async (ctx) => {
      await requireEvents(h, ctx)
      await body(ctx)
    })

  test('events: the capability flag comes with publishEvents, subscribeEvents and recentEvents', async () => {
    const backend = await h.open()
    expect(
      backend.capabilities.events,
      'a backend with publishEvents, subscribeEvents and recentEvents must declare capabilities.events true',
    ).toBe(true)
    expect(
      hasEventStore(backend),
      'capabilities.events is true, so publishEvents, subscribeEvents and recentEvents must all be functions',
    ).toBe(true)
  })

  test('events: one task’s events arrive in order, across batches, at a subscriber on another instance', async () => {
    const reader = await openEvents(() => h.open())
    const writer = await openEvents(() => h.open())
    const queue = uniqueName('conf-ev')
    const id = uniqueName('conf-task')
    const got = new Collector()
    const sub = await reader.subscribeEvents({ queues: [queue] }, got.push)
    try {
      const progress = event(queue, id, 'progress', 2)
      await writer.publishEvents([event(queue, id, 'started', 1), progress])
      await writer.publishEvents([event(queue, id, 'progress', 3)])
      await writer.publishEvents([event(queue, id, 'succeeded', 4)])
      await got.until(4, soon, 'four events')
      expect(
        got.events.map((e) => e.type),
        "one task's events must arrive at a subscriber in the order published, across publishEvents calls",
      ).toEqual(['started', 'progress', 'progress', 'succeeded'])
      expect(
        got.events[1],
        'an event must arrive exactly as published (every field, including its value)',
      ).toEqual(progress)
    } finally {
      await sub.close()
    }
  })

  test('events: nothing is lost while subscribed (300 events from two instances, each in its order)', async () => {
    const reader = await openEvents(() => h.open())
    const writers = [await openEvents(() => h.open()), await openEvents(() => h.open())]
    const queues = [uniqueName('conf-ev'), uniqueName('conf-ev')]
    const got = new Collector()
    const sub = await reader.subscribeEvents({ queues }, got.push)
    try {
      const ids = writers.map(() => uniqueName('conf-task'))
      await Promise.all(
        writers.map(async (w, wi) => {
          for (let b = 0; b < 15; b++) {
            const batch = Array.from({ length: 10 }, (_, i) =>
              event(queues[(b + i) % 2] as string, ids[wi] as string, 'progress', b * 10 + i),
            )
            await w.publishEvents(batch)
          }
        }),
      )
      await got.until(300, soon * 2, '300 events')
      for (const id of ids) {
        const ns = got.events.filter((e) => e.id === id).map((e) => (e as { value: { n: number } }).value.n)
        expect(
          ns,
          `events of task ${id} lost, duplicated or out of order (expected n = 0..149 in order)`,
        ).toEqual(Array.from({ length: 150 }, (_, n) => n))
      }
    } finally {
      await sub.close()
    }
  })

  test('events: a subscription gets only its queues and types; two subscriptions both get theirs', async () => {
    const backend = await openEvents(() => h.open())
    const [q1, q2] = [uniqueName('conf-ev'), uniqueName('conf-ev')]
    const failures = new Collector()
    const all = new Collector()
    const subs: BackendEventSubscription[] = [
      await backend.subscribeEvents({ queues: [q1], types: ['failed'] }, failures.push),
      await backend.subscribeEvents({ queues: [q1, q2] }, all.push),
    ]
    try {
      const id = uniqueName('conf-task')
      await backend.publishEvents([
        event(q1, id, 'started', 1),
        event(q2, id, 'failed', 2),
        event(q1, id, 'failed', 3),
        event(q2, id, 'succeeded', 4),
      ])
      await all.until(4, soon, 'all four events')
      await failures.until(1, soon, 'the failure')
      expect(
        failures.events.map((e) => [e.queue, e.type]),
        'a subscription filtered by queue and type got events outside its filter, or missed its one event',
      ).toEqual([[q1, 'failed']])
      expect(
        all.events,
        'an unfiltered subscription on both queues must get all 4 events, once each',
      ).toHaveLength(4)
    } finally {
      await Promise.all(subs.map((s) => s.close()))
    }
  })

  test('events: nothing is delivered after close()', async () => {
    const backend = await openEvents(() => h.open())
    const queue = uniqueName('conf-ev')
    const closed = new Collector()
    const open = new Collector()
    const first = await backend.subscribeEvents({ queues: [queue] }, closed.push)
    const second = await backend.subscribeEvents({ queues: [queue] }, open.push)
    try {
      await first.close()
      await backend.publishEvents([event(queue, uniqueName('conf-task'), 'started', 1)])
      // The open subscription on the same instance proves the event went out and was read.
      await open.until(1, soon, 'the event on the open subscription')
      expect(closed.events, 'a subscription closed before the publish must receive nothing').toEqual([])
    } finally {
      await second.close()
    }
  })

  test('events: recentEvents answers the last ones of a queue, oldest first, from another instance', async () => {
    const writer = await openEvents(() => h.open())
    const reader = await openEvents(() => h.open())
    const queue = uniqueName('conf-ev')
    const id = uniqueName('conf-task')
    await writer.publishEvents(Array.from({ length: 10 }, (_, n) => event(queue, id, 'progress', n)))
    await writer.publishEvents([event(uniqueName('conf-ev'), id, 'started', 99)])
    const last = await reader.recentEvents(queue, 3)
    expect(
      last.map((e) => (e as { value: { n: number } }).value.n),
      'recentEvents(queue, 3) must return the last 3 events of that queue, oldest first',
    ).toEqual([7, 8, 9])
    expect(
      await reader.recentEvents(uniqueName('conf-ev'), 10),
      'recentEvents of a queue with no events must be an empty list',
    ).toEqual([])
  })

  test('events: a reader that does not keep up holds at most bufferSize items (oldest dropped, counted)', async () => {
    const backend = await openEvents(() => h.open())
    const app = createApp({ broker: new MemoryBroker({ store: new MemoryStore() }), backend })
    const queue = uniqueName('conf-ev')
    const id = uniqueName('conf-task')
    try {
      const stream = await app.events({ queues: [queue], bufferSize: 10 })
      const seen = new Collector()
      stream.on(seen.push)
      for (let b = 0; b < 10; b++) {
        await backend.publishEvents(
          Array.from({ length: 50 }, (_, k) => event(queue, id, 'progress', b * 50 + k)),
        )
      }
      // The listener proves all 500 arrived; the iterator, not read meanwhile, kept the newest.
      await seen.until(500, soon * 2, '500 events on the listener')
      await stream.close()
      const items = []
      for await (const item of stream) items.push(item)
      expect(items.length).toBeLessThanOrEqual(10)
      expect(items[0]).toMatchObject({ type: 'dropped' })
      const dropped = (items[0] as { count: number }).count
      expect(dropped + items.length - 1).toBe(500)
      expect(stream.dropped).toBe(dropped)
      expect((items[items.length - 1] as { value: { n: number } }).value.n).toBe(499)
    } finally {
      await app.close()
    }
  })

  test('events: retention is bounded (ten times the retention published, the newest kept)', async () => {
    const backend = await openEvents(() => h.open())
    const queue = uniqueName('conf-ev')
    const id = uniqueName('conf-task')
    const total = retention * 10
    for (let i = 0; i < total; i += 500) {
      const size = Math.min(500, total - i)
      await backend.publishEvents(Array.from({ length: size }, (_, k) => event(queue, id, 'progress', i + k)))
    }
    const kept = await backend.recentEvents(queue, total)
    expect(
      kept.length,
      'after publishing ten times the retention, recentEvents must still return some events',
    ).toBeGreaterThanOrEqual(Math.min(retention, 1))
    expect(
      kept.length,
      'retention is not enforced: recentEvents returned more than 2 × eventRetention + 200 events',
    ).toBeLessThanOrEqual(2 * retention + 200)
    expect(
      (kept[kept.length - 1] as { value: { n: number } }).value.n,
      'trimming must drop the oldest events: the newest one published must be the last returned',
    ).toBe(total - 1)
  })
}
