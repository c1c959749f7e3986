import type { MemberOutcome, ResultBackend } from '@errand/core'
import { expect } from 'vitest'
import type { BackendSuiteContext } from './harness.js'
import { expectCode, sleep, uniqueName } from './helpers.js'

const TTL = { ttlMs: 60_000 }

function outcome(i: number): MemberOutcome {
  return i % 7 === 3
    ? { ok: false, error: { name: 'Error', message: `member ${i} failed` } }
    : { ok: true, value: { i } }
}

/** Group counters (chords) and claims (dedup, periodic ticks), and the closed state. */
export function registerGroupTests({ test, h }: BackendSuiteContext): void {
  test('completeGroupMember: exactly one call completes a group under concurrency', async () => {
    const a = await h.open()
    const b = await h.open()
    const group = uniqueName('conf-group')
    const size = 100
    const order = Array.from({ length: size }, (_, i) => i).sort(() => Math.random() - 0.5)
    const progress = await Promise.all(
      order.map((i, n) => (n % 2 === 0 ? a : b).completeGroupMember(group, i, size, outcome(i), TTL)),
    )
    const done = progress.filter((p) => p.done)
    expect(done).toHaveLength(1)
    expect(done[0]!.completed).toBe(size)
    expect(done[0]!.outcomes).toEqual(Array.from({ length: size }, (_, i) => outcome(i)))
    const counts = progress.map((p) => p.completed).sort((x, y) => x - y)
    expect(counts).toEqual(Array.from({ length: size }, (_, i) => i + 1))
    for (const p of progress) if (!p.done) expect(p.outcomes).toBeUndefined()
  })

  test('completeGroupMember: a repeated index is not counted twice', async () => {
    const backend = await h.open()
    const group = uniqueName('conf-group')
    const call = (i: number) => backend.completeGroupMember(group, i, 3, outcome(i), TTL)
    expect(await call(0)).toMatchObject({ completed: 1, done: false })
    expect(await call(0)).toMatchObject({ completed: 1, done: false })
    expect(await call(2)).toMatchObject({ completed: 2, done: false })
    const last = await call(1)
    expect(last).toEqual({ completed: 3, done: true, outcomes: [outcome(0), outcome(1), outcome(2)] })
    // A redelivered member of a complete group may fire the callback it missed.
    expect(await call(2)).toEqual(last)
  })

  test('completeGroupMember: the bookkeeping expires ttlMs after the last call', async () => {
    const backend = await h.open()
    const group = uniqueName('conf-group')
    const ttlMs = h.ms(500)
    expect(await backend.completeGroupMember(group, 0, 2, outcome(0), { ttlMs })).toMatchObject({
      completed: 1,
    })
    await sleep(ttlMs + h.ms(300))
    expect(await backend.completeGroupMember(group, 1, 2, outcome(1), { ttlMs })).toMatchObject({
      completed: 1,
      done: false,
    })
  })

  test('setIfAbsent: exactly one caller wins under contention', async () => {
    const a = await h.open()
    const b = await h.open()
    const key = uniqueName('conf-claim')
    const wins = await Promise.all(
      Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? a : b).setIfAbsent(key, `caller-${i}`, 60_000)),
    )
    expect(wins.filter(Boolean)).toHaveLength(1)
    expect(await b.getValue(key)).toBe(`caller-${wins.indexOf(true)}`)
  })

  test('setIfAbsent: a claim expires after ttlMs and can be taken again', async () => {
    const backend = await h.open()
    const key = uniqueName('conf-claim')
    const ttlMs = h.ms(500)
    expect(await backend.setIfAbsent(key, 'first', ttlMs)).toBe(true)
    expect(await backend.setIfAbsent(key, 'second', ttlMs)).toBe(false)
    expect(await backend.getValue(key)).toBe('first')
    await sleep(ttlMs + h.ms(300))
    expect(await backend.getValue(key)).toBeUndefined()
    expect(await backend.setIfAbsent(key, 'third', ttlMs)).toBe(true)
    expect(await backend.getValue(key)).toBe('third')
  })

  test('getValue of an unknown key is undefined', async () => {
    const backend = await h.open()
    expect(await backend.getValue(uniqueName('conf-none'))).toBeUndefined()
  })

  test('calls after close reject with ERR_CLOSED', async () => {
    const backend = await h.open()
    await h.close(backend)
    const signal = new AbortController().signal
    const calls: [string, (b: ResultBackend) => Promise<unknown>][] = [
      ['connect', (b) => b.connect()],
      ['setState', (b) => b.setState({ id: 'x', state: 'PENDING' }, TTL)],
      ['getState', (b) => b.getState('x')],
      ['getStates', (b) => b.getStates(['x'])],
      ['waitFor', (b) => b.waitFor('x', { signal })],
      ['completeGroupMember', (b) => b.completeGroupMember('g', 0, 1, outcome(0), TTL)],
      ['setIfAbsent', (b) => b.setIfAbsent('k', 'v', 1000)],
      ['getValue', (b) => b.getValue('k')],
    ]
    for (const [name, call] of calls) await expectCode(() => call(backend), 'ERR_CLOSED', name)
  })
}
