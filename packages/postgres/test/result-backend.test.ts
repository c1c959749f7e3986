import type { TaskRecord } from '@errand/core'
import { afterAll, describe, expect, it } from 'vitest'
import { PostgresResultBackend } from '../src/index.js'
import { dropSchema, schemaUrl, sql, uniqueQueue, uniqueSchema } from './helpers.js'

const schema = uniqueSchema('rb')
const backends: PostgresResultBackend[] = []
async function open(options: { cleanupIntervalMs?: number } = {}): Promise<PostgresResultBackend> {
  const b = new PostgresResultBackend({ url: schemaUrl(schema), ...options })
  backends.push(b)
  await b.connect()
  return b
}
afterAll(async () => {
  await Promise.all(backends.map((b) => b.close()))
  await dropSchema(schema)
})

const id = (tag = 'task') => uniqueQueue(tag)
const TTL = { ttlMs: 60_000 }

describe('postgres result backend', () => {
  it('stores records as written (key order kept) and reads many in the order asked', async () => {
    const b = await open()
    const a = id()
    const record: TaskRecord = {
      id: a,
      state: 'SUCCESS',
      result: { z: 1, a: [1, 'x', null], m: { y: 2, b: 3 } },
      attempts: 1,
    }
    expect(await b.setState(record, TTL)).toBe('SUCCESS')
    const got = await b.getState(a)
    expect(got).toEqual(record)
    expect(Object.keys((got?.result ?? {}) as object)).toEqual(['z', 'a', 'm'])
    expect(await b.getStates([id(), a, a])).toEqual([undefined, record, record])
    expect(await b.getStates([])).toEqual([])
  })

  it('never overwrites CANCELED unless it expired', async () => {
    const b = await open()
    const a = id()
    await b.setState({ id: a, state: 'CANCELED' }, TTL)
    expect(await b.setState({ id: a, state: 'STARTED' }, TTL)).toBe('CANCELED')
    expect(await b.setState({ id: a, state: 'SUCCESS', result: 1 }, TTL)).toBe('CANCELED')
    expect((await b.getState(a))?.state).toBe('CANCELED')
    const c = id()
    await b.setState({ id: c, state: 'CANCELED' }, { ttlMs: 1 })
    await sql(`SELECT pg_sleep(0.01)`)
    expect(await b.getState(c)).toBeUndefined()
    expect(await b.setState({ id: c, state: 'PENDING' }, TTL)).toBe('PENDING')
  })

  it('writes made together are batched and each gets its own answer, in call order per id', async () => {
    const b = await open()
    const ids = Array.from({ length: 300 }, () => id('batch'))
    const cancelled = ids[7]!
    await b.setState({ id: cancelled, state: 'CANCELED' }, TTL)
    const answers = await Promise.all(
      ids.flatMap((i) => [
        b.setState({ id: i, state: 'STARTED' }, TTL),
        b.setState({ id: i, state: 'SUCCESS', result: i }, TTL),
      ]),
    )
    expect(answers.filter((s) => s === 'CANCELED')).toHaveLength(2)
    const records = await b.getStates(ids)
    for (const [n, r] of records.entries()) {
      if (ids[n] === cancelled) expect(r?.state).toBe('CANCELED')
      else expect(r).toEqual({ id: ids[n], state: 'SUCCESS', result: ids[n] })
    }
  })

  it('waitFor: at once when final, pushed by another process, aborted by its signal', async () => {
    const waiter = await open()
    const writer = await open()
    const done = id()
    await writer.setState({ id: done, state: 'FAILURE', error: { name: 'E', message: 'm' } }, TTL)
    expect((await waiter.waitFor(done, { signal: new AbortController().signal })).state).toBe('FAILURE')

    const later = id()
    const started = Date.now()
    const waiting = waiter.waitFor(later, { signal: new AbortController().signal })
    await writer.setState({ id: later, state: 'STARTED' }, TTL)
    await writer.setState({ id: later, state: 'SUCCESS', result: 42 }, TTL)
    expect(await waiting).toEqual({ id: later, state: 'SUCCESS', result: 42 })
    expect(Date.now() - started).toBeLessThan(1000)

    const never = id()
    const ac = new AbortController()
    const aborted = waiter.waitFor(never, { signal: ac.signal })
    ac.abort(new Error('gave up'))
    await expect(aborted).rejects.toThrow('gave up')
  })

  it('waitFor misses no write racing the call (many at once)', async () => {
    const waiter = await open()
    const writer = await open()
    const ids = Array.from({ length: 200 }, () => id('race'))
    const waits = ids.map((i) => waiter.waitFor(i, { signal: new AbortController().signal }))
    await Promise.all(ids.map((i) => writer.setState({ id: i, state: 'SUCCESS', result: i }, TTL)))
    const records = await Promise.all(waits)
    expect(records.map((r) => r.result)).toEqual(ids)
  })

  it('close rejects pending waits with ERR_CLOSED', async () => {
    const b = await open()
    const waiting = b.waitFor(id(), { signal: new AbortController().signal })
    await b.close()
    await expect(waiting).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    await expect(b.getState('x')).rejects.toMatchObject({ code: 'ERR_CLOSED' })
  })

  it('completeGroupMember counts each index once, and exactly one first completer under concurrency', async () => {
    const instances = await Promise.all([open(), open(), open()])
    for (let round = 0; round < 5; round++) {
      const group = id('group')
      const size = 12
      const calls = Array.from({ length: size }, (_, i) =>
        instances[i % 3]!.completeGroupMember(group, i, size, { ok: true, value: i * 10 }, TTL),
      )
      const progress = await Promise.all(calls)
      // Distinct members: exactly one call completes the group, and it gets every outcome.
      const done = progress.filter((p) => p.done)
      expect(done).toHaveLength(1)
      expect(done[0]!.completed).toBe(size)
      expect(done[0]!.outcomes).toEqual(Array.from({ length: size }, (_, i) => ({ ok: true, value: i * 10 })))
      expect(progress.map((p) => p.completed).sort((x, y) => x - y)).toEqual(
        Array.from({ length: size }, (_, i) => i + 1),
      )
      const again = await instances[1]!.completeGroupMember(
        group,
        5,
        size,
        { ok: false, error: { name: 'X', message: 'late' } },
        TTL,
      )
      expect(again.done).toBe(true)
      expect(again.completed).toBe(size)
      expect(again.outcomes?.[5]).toEqual({ ok: true, value: 50 })
    }
  })

  it('completeGroupMember: the same member racing itself counts once', async () => {
    const instances = await Promise.all([open(), open()])
    const group = id('dup')
    const racing = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        instances[i % 2]!.completeGroupMember(group, 0, 2, { ok: true, value: 'a' }, TTL),
      ),
    )
    expect(racing.every((p) => p.completed === 1 && !p.done)).toBe(true)
    const last = await instances[0]!.completeGroupMember(group, 1, 2, { ok: true, value: 'b' }, TTL)
    expect(last).toEqual({
      completed: 2,
      done: true,
      outcomes: [
        { ok: true, value: 'a' },
        { ok: true, value: 'b' },
      ],
    })
  })

  it('setIfAbsent: one winner among racers; an expired claim can be taken again', async () => {
    const instances = await Promise.all([open(), open()])
    const key = id('claim')
    const wins = await Promise.all(
      Array.from({ length: 10 }, (_, i) => instances[i % 2]!.setIfAbsent(key, `v${i}`, 60_000)),
    )
    expect(wins.filter(Boolean)).toHaveLength(1)
    const winner = wins.indexOf(true)
    expect(await instances[0]!.getValue(key)).toBe(`v${winner}`)
    const short = id('claim')
    expect(await instances[0]!.setIfAbsent(short, 'a', 1)).toBe(true)
    await sql(`SELECT pg_sleep(0.01)`)
    expect(await instances[1]!.getValue(short)).toBeUndefined()
    expect(await instances[1]!.setIfAbsent(short, 'b', 60_000)).toBe(true)
    expect(await instances[0]!.getValue(short)).toBe('b')
  })

  it('cleanup deletes expired rows of every kind, without a cron', async () => {
    const b = await open({ cleanupIntervalMs: 0 })
    const r = id('exp')
    const g = id('exp')
    const k = id('exp')
    await b.setState({ id: r, state: 'SUCCESS' }, { ttlMs: 1 })
    await b.completeGroupMember(g, 0, 2, { ok: true, value: 1 }, { ttlMs: 1 })
    await b.setIfAbsent(k, 'v', 1)
    await sql(`SELECT pg_sleep(0.01)`)
    const removed = await b.cleanup()
    expect(removed.results).toBeGreaterThanOrEqual(1)
    expect(removed.kv).toBeGreaterThanOrEqual(1)
    expect(removed.groups).toBeGreaterThanOrEqual(1)
    const left = await sql<{ n: number }>(
      `SELECT ((SELECT count(*) FROM "${schema}".results WHERE id = $1) + (SELECT count(*) FROM "${schema}".kv WHERE key = $2)
        + (SELECT count(*) FROM "${schema}".groups WHERE id = $3) + (SELECT count(*) FROM "${schema}".group_members WHERE group_id = $3))::int AS n`,
      [r, k, g],
    )
    expect(left[0]!.n).toBe(0)
  })

  it('sweeps expired rows in the background after writes', async () => {
    const b = await open({ cleanupIntervalMs: 1 })
    const r = id('bg')
    await b.setState({ id: r, state: 'SUCCESS' }, { ttlMs: 1 })
    await sql(`SELECT pg_sleep(0.01)`)
    const deadline = Date.now() + 5000
    for (;;) {
      await b.setState({ id: id('bg'), state: 'PENDING' }, TTL)
      const rows = await sql(`SELECT 1 FROM "${schema}".results WHERE id = $1`, [r])
      if (rows.length === 0) break
      if (Date.now() > deadline) throw new Error('expired row not swept')
      await new Promise((res) => setTimeout(res, 20))
    }
  })
})
