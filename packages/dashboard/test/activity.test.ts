import { type App, createApp, NotSupportedError, type TaskEvent } from '@errand/core'
import { describe, expect, it, vi } from 'vitest'
import { Activity } from '../src/activity.js'
import { serveDashboard } from '../src/index.js'
import { quiet, unique, until } from './helpers.js'

const MIN = 60_000

/** An App with the four methods Activity uses: a live feed it can push to, and stored history. */
function fakeApp(history: Record<string, TaskEvent[]>) {
  let listener: ((e: TaskEvent) => void) | undefined
  let closed = false
  let release!: () => void
  const backfillGate = new Promise<void>((resolve) => {
    release = resolve
  })
  const app = {
    queues: async () => Object.keys(history).sort(),
    events: async () => ({
      on: (fn: (e: TaskEvent) => void) => {
        listener = fn
        return () => {}
      },
      close: async () => {
        closed = true
      },
    }),
    recentEvents: async (q: string, { limit }: { limit: number }) => {
      await backfillGate
      return (history[q] ?? []).slice(-limit)
    },
  } as unknown as App
  return { app, push: (e: TaskEvent) => listener?.(e), release, closed: () => closed }
}

const ev = (
  type: 'succeeded' | 'failed' | 'dead-lettered' | 'started',
  id: string,
  queue: string,
  at: number,
) =>
  ({
    type,
    id,
    task: 't',
    queue,
    attempt: 1,
    at,
    ...(type === 'succeeded' && { durationMs: 5 }),
    ...(type === 'failed' && { error: { name: 'Error', message: 'x' }, willRetry: false }),
    ...(type === 'dead-lettered' && { reason: 'exhausted' }),
  }) as TaskEvent

describe('Activity (task events → throughput, activity list, lineage)', () => {
  it('counts per minute from live and backfilled events, once each, and is blank (null) before its window', async () => {
    let now = 100 * MIN + 30_000
    const hist = {
      a: [
        ev('succeeded', '1', 'a', 95 * MIN + 1),
        ev('failed', '2', 'a', 99 * MIN),
        ev('succeeded', '3', 'a', 100 * MIN + 1),
      ],
      b: [ev('dead-lettered', '4', 'b', 98 * MIN)],
    }
    const fake = fakeApp(hist)
    const activity = new Activity(fake.app, { backfillLimit: 3, now: () => now })
    const started = activity.start()
    await until(async () => activity.status.state === 'live', 'live')
    // Arrives live while the backfill is running, and is in the backfill too: counted once.
    fake.push(hist.a[2]!)
    fake.push({ ...ev('succeeded', '5', 'a', 100 * MIN + 2), root: 'r', parent: 'p' })
    fake.release()
    await started
    expect(activity.backfilled).toBe(3)
    // Queue a: three events returned = the limit, so its window starts after the oldest one's minute.
    expect(activity.windowStart('a')).toBe(96 * MIN)
    const a = activity.throughput('a')
    expect(a).toHaveLength(60)
    expect(a.find((p) => p.at === 95 * MIN)).toEqual({
      at: 95 * MIN,
      succeeded: null,
      failed: null,
      deadLettered: null,
    })
    expect(a.find((p) => p.at === 99 * MIN)).toEqual({
      at: 99 * MIN,
      succeeded: 0,
      failed: 1,
      deadLettered: 0,
    })
    expect(a.at(-1)).toEqual({ at: 100 * MIN, succeeded: 2, failed: 0, deadLettered: 0 })
    // Queue b held fewer than the limit: all its history is known.
    expect(activity.windowStart('b')).toBe(Number.NEGATIVE_INFINITY)
    expect(activity.throughput('b')[0]?.succeeded).toBe(0)
    // All queues: as far back as every queue is known.
    expect(activity.windowStart(undefined)).toBe(96 * MIN)
    const all = activity.throughput(undefined)
    expect(all.find((p) => p.at === 98 * MIN)?.deadLettered).toBe(1)
    expect(all.at(-1)?.succeeded).toBe(2)
    // The activity list: newest first; lineage from the events.
    expect(activity.recentOf('a').map((i) => i.id)).toEqual(['5', '3', '2', '1'])
    expect(activity.lineage('5')).toEqual({ queue: 'a', task: 't', root: 'r', parent: 'p' })
    // An hour later the old minutes are gone.
    now += 61 * MIN
    expect(activity.throughput('a').every((p) => p.succeeded === 0)).toBe(true)
    activity.stop()
    await until(async () => fake.closed(), 'closed')
  })

  it('an event that arrives twice (read back then live, or written twice by the store) is listed and counted once', async () => {
    const now = Date.now()
    const failed = ev('failed', 'f', 'q', now - 1000)
    const fake = fakeApp({ q: [failed] })
    fake.release()
    const activity = new Activity(fake.app, {})
    const seen: string[] = []
    activity.subscribe((item) => seen.push(`${item.type}:${item.id}`))
    await activity.start()
    // Read back at start; then the live feed delivers the same event again, twice.
    fake.push(failed)
    fake.push({ ...failed })
    // A later attempt of the same task is a different event.
    fake.push({ ...failed, attempt: 2, at: now })
    expect(activity.recentOf('q').map((i) => `${i.id}:${i.attempt}`)).toEqual(['f:2', 'f:1'])
    expect(seen).toEqual(['failed:f', 'failed:f'])
    expect(activity.throughput('q').reduce((n, p) => n + (p.failed ?? 0), 0)).toBe(2)
    activity.stop()
  })

  it('stays bounded: the last recentLimit outcomes per queue, maxLineage tasks', async () => {
    const fake = fakeApp({})
    fake.release()
    const activity = new Activity(fake.app, { recentLimit: 3, maxLineage: 5 })
    await activity.start()
    const now = Date.now()
    for (let i = 0; i < 20; i++) fake.push(ev(i % 2 ? 'succeeded' : 'started', String(i), 'q', now))
    expect(activity.recentOf('q').map((i) => i.id)).toEqual(['19', '17', '15'])
    expect(activity.lineage('0')).toBeUndefined()
    expect(activity.lineage('19')?.queue).toBe('q')
    expect(activity.throughput('q').at(-1)?.succeeded).toBe(10)
  })

  it('an app without a result backend: the chart says it counts only the tasks of this process', async () => {
    const app = createApp({ broker: `memory://${unique('memory')}`, logger: quiet })
    const running = await serveDashboard({ app, port: 0 })
    try {
      let page = ''
      for (let i = 0; i < 100 && !page.includes('throughput-process-only'); i++) {
        page = await (await fetch(running.url)).text()
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      expect(page).toContain('id="throughput-process-only"')
      expect(page).toContain('id="throughput-chart"')
    } finally {
      await running.close()
      await app.close()
    }
  })

  it('a backend without events: the page keeps the depth chart and says why there is no throughput', async () => {
    const store = unique('memory')
    const app = createApp({ broker: `memory://${store}`, backend: `memory://${store}`, logger: quiet })
    vi.spyOn(app, 'events').mockRejectedValue(new NotSupportedError('this backend keeps no events'))
    const running = await serveDashboard({ app, port: 0 })
    try {
      let page = ''
      for (let i = 0; i < 100 && !page.includes('throughput-unavailable'); i++) {
        page = await (await fetch(running.url)).text()
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      expect(page).toContain('id="throughput-unavailable"')
      expect(page).toContain('this backend keeps no events')
      expect(page).toContain('id="depth-chart"')
      expect(page).not.toContain('id="throughput-chart"')
      const queuePage = await (await fetch(`${running.url}queues/default`)).text()
      expect(queuePage).toContain('Not available: <span class="reason">this backend keeps no events')
      const api = (await (await fetch(`${running.url}api/throughput`)).json()) as {
        status: { state: string }
      }
      expect(api.status.state).toBe('unsupported')
    } finally {
      await running.close()
      await app.close()
    }
  })
})
