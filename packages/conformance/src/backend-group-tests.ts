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
    expect(
      done,
      'exactly one completeGroupMember call must return done: true when 100 members complete at once on two instances',
    ).toHaveLength(1)
    expect(done[0]!.completed, 'the completing call must report completed equal to the group size').toBe(size)
    expect(
      done[0]!.outcomes,
      "the completing call must return every member's outcome in index order (not completion order)",
    ).toEqual(Array.from({ length: size }, (_, i) => outcome(i)))
    const counts = progress.map((p) => p.completed).sort((x, y) => x - y)
    expect(
      counts,
      'each call must see a distinct completed count (1..size): the counter is not atomic',
    ).toEqual(Array.from({ length: size }, (_, i) => i + 1))
    for (const p of progress)
      if (!p.done)
        expect(p.outcomes, 'a call that did not complete the group must not return outcomes').toBeUndefined()
  })

  test('completeGroupMember: a repeated index is not counted twice', async () => {
    const backend = await h.open()
    const group = uniqueName('conf-group')
    const call = (i: number) => backend.completeGroupMember(group, i, 3, outcome(i), TTL)
    expect(await call(0), 'the first record of index 0 counts 1').toMatchObject({ completed: 1, done: false })
    expect(await call(0), 'recording index 0 again (a redelivery) must not count twice').toMatchObject({
      completed: 1,
      done: false,
    })
    expect(await call(2), 'a new index (2) counts: completed 2 of 3').toMatchObject({
      completed: 2,
      done: false,
    })
    const last = await call(1)
    expect(
      last,
      'the last missing index completes the group and returns every outcome in index order',
    ).toEqual({ completed: 3, done: true, outcomes: [outcome(0), outcome(1), outcome(2)] })
    // A redelivered member of a complete group may fire the callback it missed.
    expect(
      await call(2),
      'recording an index of a complete group again must answer done: true with the same outcomes (a redelivered member may fire the callback it missed)',
    ).toEqual(last)
  })

  test('completeGroupMember: the bookkeeping expires ttlMs after the last call', async () => {
    const backend = await h.open()
    const group = uniqueName('conf-group')
    const ttlMs = h.ms(500)
    expect(
      await backend.completeGroupMember(group, 0, 2, outcome(0), { ttlMs }),
      'the first member of a group counts 1',
    ).toMatchObject({
      completed: 1,
    })
    await sleep(ttlMs + h.ms(300))
    expect(
      await backend.completeGroupMember(group, 1, 2, outcome(1), { ttlMs }),
      "after ttlMs without a call, the group's bookkeeping must have expired: the next member counts 1 again",
    ).toMatchObject({
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
    expect(
      wins.filter(Boolean),
      'exactly one of 50 concurrent setIfAbsent calls on two instances may win',
    ).toHaveLength(1)
    expect(await b.getValue(key), "the stored value must be the winner's, read from the other instance").toBe(
      `caller-${wins.indexOf(true)}`,
    )
  })

  test('setIfAbsent: a claim expires after ttlMs and can be taken again', async () => {
    const backend = await h.open()
    const key = uniqueName('conf-claim')
    const ttlMs = h.ms(500)
    expect(await backend.setIfAbsent(key, 'first', ttlMs), 'setIfAbsent on a free key must win').toBe(true)
    expect(await backend.setIfAbsent(key, 'second', ttlMs), 'setIfAbsent on a taken key must lose').toBe(
      false,
    )
    expect(await backend.getValue(key), 'a losing setIfAbsent must not change the stored value').toBe('first')
    await sleep(ttlMs + h.ms(300))
    expect(await backend.getValue(key), 'a claim must be gone after its ttlMs').toBeUndefined()
    expect(
      await backend.setIfAbsent(key, 'third', ttlMs),
      'an expired claim must be free to take again',
    ).toBe(true)
    expect(await backend.getValue(key), "the new claim's value must be stored").toBe('third')
  })

  test('getValue of an unknown key is undefined', async () => {
    const backend = await h.open()
    expect(
      await backend.getValue(uniqueName('conf-none')),
      'getValue of a key never set must be undefined',
    ).toBeUndefined()
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
