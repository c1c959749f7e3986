import type { App, QueueStats } from '@errand/core'
import { describe, expect, it } from 'vitest'
import { depthPoints } from '../src/history.js'
import { Sampler } from '../src/sampler.js'

/** The two App methods the sampler uses, over a mutable table of counts. */
function fakeApp(counts: Record<string, QueueStats>, calls = { stats: 0 }, fail?: () => Error): App {
  return {
    queues: async () => Object.keys(counts).sort(),
    stats: async (q: string) => {
      calls.stats++
      const err = fail?.()
      if (err) throw err
      return counts[q]!
    },
  } as unknown as App
}

describe('Sampler', () => {
  it('keeps a bounded hour: the ring never holds more than historyMs / intervalMs + 1 samples, oldest first', async () => {
    let now = 1_000_000
    const counts = { a: { ready: 0, delayed: 0, inFlight: 0, dead: 0 } }
    const sampler = new Sampler(fakeApp(counts), { intervalMs: 100, historyMs: 1_000, now: () => now })
    for (let i = 0; i < 50; i++) {
      counts.a = { ready: i, delayed: 0, inFlight: 1, dead: 2 }
      await sampler.tick()
      now += 100
    }
    const history = sampler.history()
    expect(history.length).toBeLessThanOrEqual(11)
    expect(history.length).toBeGreaterThanOrEqual(10)
    expect(history.map((s) => s.queues.a!.ready)).toEqual(
      [...Array(history.length)].map((_, i) => 50 - history.length + i),
    )
    expect(sampler.latest()?.queues.a?.ready).toBe(49)
    // Samples older than the hour are not served even if the timer stopped long ago.
    now += 5_000
    expect(sampler.history()).toEqual([])
  })

  it('shares a tick still running (a slow store is not asked twice) and tells subscribers', async () => {
    const calls = { stats: 0 }
    const sampler = new Sampler(
      fakeApp({ a: { ready: 1, delayed: undefined, inFlight: undefined, dead: 0 } }, calls),
    )
    const seen: number[] = []
    const unsubscribe = sampler.subscribe((s) => seen.push(s.queues.a!.ready))
    const [one, two] = await Promise.all([sampler.tick(), sampler.tick()])
    expect(one).toBe(two)
    expect(calls.stats).toBe(1)
    expect(one?.queues.a).toEqual({ ready: 1, delayed: null, inFlight: null, dead: 0 })
    unsubscribe()
    await sampler.tick()
    expect(seen).toEqual([1])
  })

  it('records a failing store as lastError without a sample, and stops for good on ERR_CLOSED', async () => {
    let error: Error | undefined = new Error('store down')
    const sampler = new Sampler(
      fakeApp({ a: { ready: 1, delayed: 0, inFlight: 0, dead: 0 } }, undefined, () => error!),
      {
        intervalMs: 100,
      },
    )
    expect(await sampler.tick()).toBeUndefined()
    expect(sampler.lastError).toBe('store down')
    expect(sampler.history()).toEqual([])
    error = undefined
    expect(await sampler.tick()).toBeDefined()
    expect(sampler.lastError).toBeUndefined()
    sampler.start()
    error = Object.assign(new Error('app is closed'), { code: 'ERR_CLOSED' })
    await sampler.tick()
    expect((sampler as unknown as { timer: unknown }).timer).toBeUndefined()
  })

  it('depthPoints: one queue, or every queue summed (in flight null only when no queue can tell)', () => {
    const samples = [
      {
        at: 1,
        queues: {
          a: { ready: 2, delayed: 0, inFlight: 1, dead: 0 },
          b: { ready: 3, delayed: null, inFlight: null, dead: 4 },
        },
      },
      { at: 2, queues: { b: { ready: 1, delayed: null, inFlight: null, dead: 0 } } },
    ]
    expect(depthPoints(samples, undefined)).toEqual([
      { at: 1, ready: 5, inFlight: 1, dead: 4 },
      { at: 2, ready: 1, inFlight: null, dead: 0 },
    ])
    expect(depthPoints(samples, 'a')).toEqual([{ at: 1, ready: 2, inFlight: 1, dead: 0 }])
  })
})
