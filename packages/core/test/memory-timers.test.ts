import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { Delivery } from '../src/broker.js'
import { MemoryBroker, MemoryResultBackend, MemoryStore } from '../src/memory/index.js'

const DAY = 24 * 60 * 60 * 1000
const encode = (text: string) => new TextEncoder().encode(text)

beforeEach(() => {
  vi.useFakeTimers()
})

afterEach(() => {
  vi.useRealTimers()
})

describe('memory timers', () => {
  it('clears every timer when the last broker and backend on a store close', async () => {
    const store = new MemoryStore()
    const broker = new MemoryBroker({ store })
    const backend = new MemoryResultBackend({ store })
    await broker.publish('q', [{ body: encode('later'), delayMs: 60_000 }, { body: encode('now') }])
    const got: Delivery[] = []
    await broker.consume('q', (d) => got.push(d), { prefetch: 5, leaseMs: 10_000 })
    await vi.advanceTimersByTimeAsync(1)
    expect(got).toHaveLength(1)
    await backend.setState({ id: 't', state: 'SUCCESS' }, { ttlMs: 60_000 })
    expect(vi.getTimerCount()).toBeGreaterThan(0)
    await broker.close()
    expect(vi.getTimerCount()).toBeGreaterThan(0) // the backend is still open: its expiry timer runs
    await backend.close()
    await vi.advanceTimersByTimeAsync(0)
    expect(vi.getTimerCount()).toBe(0)
    expect(store.clients).toBe(0)
  })

  it('re-arms timers when a broker opens on a store again', async () => {
    const store = new MemoryStore()
    const first = new MemoryBroker({ store })
    await first.publish('q', [{ body: encode('x'), delayMs: 5_000 }])
    await first.close()
    await vi.advanceTimersByTimeAsync(10_000)
    const second = new MemoryBroker({ store })
    expect((await second.stats('q')).delayed).toBe(1)
    const got: Delivery[] = []
    await second.consume('q', (d) => got.push(d), { prefetch: 1 })
    await vi.advanceTimersByTimeAsync(1)
    expect(got).toHaveLength(1)
    await second.close()
  })

  it('delivers a delay longer than setTimeout can wait, not before it is due', async () => {
    const broker = new MemoryBroker({ store: new MemoryStore() })
    const got: Delivery[] = []
    await broker.consume('q', (d) => got.push(d), { prefetch: 1 })
    await broker.publish('q', [{ body: encode('far'), delayMs: 40 * DAY }])
    await vi.advanceTimersByTimeAsync(40 * DAY - 1)
    expect(got).toHaveLength(0)
    expect((await broker.stats('q')).delayed).toBe(1)
    await vi.advanceTimersByTimeAsync(1)
    expect((await broker.stats('q')).delayed).toBe(0)
    // The dispatch runs on the next turn (a faked setImmediate scheduled at the end of the tick).
    await vi.advanceTimersByTimeAsync(1)
    expect(got).toHaveLength(1)
    await broker.close()
  })

  it('redelivers after the default 30 s lease, and extend pushes it back', async () => {
    const broker = new MemoryBroker({ store: new MemoryStore() })
    const got: Delivery[] = []
    await broker.consume('q', (d) => got.push(d), { prefetch: 2 })
    await broker.publish('q', [{ body: encode('a') }, { body: encode('b') }])
    await vi.advanceTimersByTimeAsync(1)
    expect(got.map((d) => d.attempt)).toEqual([1, 1])
    await vi.advanceTimersByTimeAsync(20_000)
    await got[1]!.extend!(30_000)
    await vi.advanceTimersByTimeAsync(10_000)
    // a's lease ran out; b's was extended. a comes back, but the consumer's two slots are held
    // until it settles a, so settle the stale one first.
    await got[0]!.ack()
    await vi.advanceTimersByTimeAsync(1)
    expect(got.map((d) => [new TextDecoder().decode(d.body), d.attempt])).toEqual([
      ['a', 1],
      ['b', 1],
      ['a', 2],
    ])
    await vi.advanceTimersByTimeAsync(19_000)
    expect(got).toHaveLength(3)
    await broker.close()
  })

  it('drops expired results when their timer fires', async () => {
    const store = new MemoryStore()
    const backend = new MemoryResultBackend({ store })
    await backend.setState({ id: 't', state: 'SUCCESS' }, { ttlMs: 1000 })
    await backend.setIfAbsent('k', 'v', 1000)
    await backend.completeGroupMember('g', 0, 2, { ok: true, value: 1 }, { ttlMs: 1000 })
    await vi.advanceTimersByTimeAsync(999)
    expect(await backend.getState('t')).toBeDefined()
    await vi.advanceTimersByTimeAsync(1)
    expect(vi.getTimerCount()).toBe(0)
    expect(await backend.getState('t')).toBeUndefined()
    expect(await backend.getValue('k')).toBeUndefined()
    await backend.close()
  })
})
