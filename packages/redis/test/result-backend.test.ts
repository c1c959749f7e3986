import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { RedisResultBackend } from '../src/index.js'
import { deletePrefix, REDIS_URL, redisAvailable, uniquePrefix } from './helpers.js'

const available = await redisAvailable()
const TTL = { ttlMs: 60_000 }

describe.runIf(available)('RedisResultBackend on Redis', () => {
  const prefix = uniquePrefix('backend')
  const open: RedisResultBackend[] = []
  let raw: Redis
  const backend = async (): Promise<RedisResultBackend> => {
    const b = new RedisResultBackend({ url: REDIS_URL, keyPrefix: prefix })
    await b.connect()
    open.push(b)
    return b
  }

  beforeAll(() => {
    raw = new Redis(REDIS_URL)
  })
  afterEach(async () => {
    await Promise.all(open.splice(0).map((b) => b.close()))
  })
  afterAll(async () => {
    raw.disconnect()
    await deletePrefix(prefix)
  })

  it('two waiters of one id both see a final write that lands while the first one subscribes', async () => {
    const writer = await backend()
    for (let i = 0; i < 20; i++) {
      // A fresh backend: its subscriber connection is still being made when both waits start.
      const reader = await backend()
      const id = `race-${i}`
      const first = reader.waitFor(id, { signal: AbortSignal.timeout(5000) })
      const second = reader.waitFor(id, { signal: AbortSignal.timeout(5000) })
      // Let the second waiter's read go out before the write.
      await new Promise((r) => setImmediate(r))
      await writer.setState({ id, state: 'SUCCESS', result: i }, TTL)
      const both = await Promise.allSettled([first, second])
      expect(
        both.map((r) => (r.status === 'fulfilled' ? r.value.result : String(r.reason))),
        `round ${i}: each waiter must get the final record`,
      ).toEqual([i, i])
      await reader.close()
    }
  })

  it('a final record written without its notification still settles waitFor, by the safety poll', async () => {
    const b = new RedisResultBackend({ url: REDIS_URL, keyPrefix: prefix, waitPollMs: 100 })
    await b.connect()
    open.push(b)
    const waiting = b.waitFor('missed-1', { signal: AbortSignal.timeout(5000) })
    await new Promise((r) => setTimeout(r, 50))
    // As a publish lost on a cut connection leaves it: the record stored, nobody told.
    await raw.set(
      `${prefix}:result:missed-1`,
      JSON.stringify({ state: 'SUCCESS', id: 'missed-1', result: 7 }),
    )
    expect((await waiting).result).toBe(7)
  })

  it('refuses a waitPollMs below 10 ms, naming it', () => {
    expect(() => new RedisResultBackend({ url: REDIS_URL, waitPollMs: 1 })).toThrow(/waitPollMs/)
  })

  it('stores records as JSON with their TTL', async () => {
    const b = await backend()
    await b.setState({ id: 't1', state: 'STARTED', attempts: 1 }, { ttlMs: 5000 })
    const key = `${prefix}:result:t1`
    expect(JSON.parse((await raw.get(key)) ?? 'null')).toEqual({ state: 'STARTED', id: 't1', attempts: 1 })
    const ttl = await raw.pttl(key)
    expect(ttl).toBeGreaterThan(4000)
    expect(ttl).toBeLessThanOrEqual(5000)
  })

  it('waitFor is pushed: a final record on the channel wakes it without a stored record', async () => {
    const b = await backend()
    const waiting = b.waitFor('pushed', { signal: new AbortController().signal })
    // Wait until the subscription is in place, then publish by hand (nothing is stored).
    for (let i = 0; i < 200; i++) {
      const [, count] = (await raw.pubsub('NUMSUB', `${prefix}:done:pushed`)) as [string, number]
      if (count > 0) break
      await new Promise((r) => setTimeout(r, 5))
    }
    await raw.publish(`${prefix}:done:pushed`, JSON.stringify({ state: 'SUCCESS', id: 'pushed', result: 7 }))
    expect(await waiting).toEqual({ state: 'SUCCESS', id: 'pushed', result: 7 })
    expect(await raw.exists(`${prefix}:result:pushed`)).toBe(0)
  })

  it('many waiters on one signal all resolve, and unsubscribe when done', async () => {
    const b = await backend()
    const writer = await backend()
    const ids = Array.from({ length: 100 }, (_, i) => `many-${i}`)
    const signal = new AbortController().signal
    const waits = ids.map((id) => b.waitFor(id, { signal }))
    await Promise.all(ids.map((id, i) => writer.setState({ id, state: 'SUCCESS', result: i }, TTL)))
    expect((await Promise.all(waits)).map((r) => r.result)).toEqual(ids.map((_, i) => i))
    for (let i = 0; i < 200; i++) {
      const [, count] = (await raw.pubsub('NUMSUB', `${prefix}:done:many-0`)) as [string, number]
      if (count === 0) return
      await new Promise((r) => setTimeout(r, 5))
    }
    throw new Error('still subscribed after every wait resolved')
  })

  it('a group keeps its size', async () => {
    const b = await backend()
    await b.completeGroupMember('g-size', 0, 3, { ok: true, value: 1 }, TTL)
    await expect(b.completeGroupMember('g-size', 1, 4, { ok: true, value: 1 }, TTL)).rejects.toThrow(
      TypeError,
    )
  })

  it('getStates reads many records in one round trip', async () => {
    const b = await backend()
    await b.setState({ id: 'a', state: 'SUCCESS', result: 1 }, TTL)
    await b.setState({ id: 'c', state: 'FAILURE', error: { name: 'E', message: 'm' } }, TTL)
    const states = await b.getStates(['a', 'b', 'c'])
    expect(states.map((s) => s?.state)).toEqual(['SUCCESS', undefined, 'FAILURE'])
  })

  it('garbage in a stored record or on a done channel fails or is ignored, never thrown', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (err: unknown) => void unhandled.push(err)
    process.on('unhandledRejection', onUnhandled)
    process.on('uncaughtException', onUnhandled)
    try {
      const warnings: string[] = []
      const logger = { debug() {}, info() {}, warn: (m: string) => void warnings.push(m), error() {} }
      const b = new RedisResultBackend({ url: REDIS_URL, keyPrefix: prefix, logger })
      await b.connect()
      open.push(b)
      await raw.set(`${prefix}:result:bad`, 'not json')
      const signal = AbortSignal.timeout(10_000)
      await expect(b.waitFor('bad', { signal })).rejects.toMatchObject({ code: 'ERR_DECODE' })
      await expect(b.getState('bad')).rejects.toMatchObject({ code: 'ERR_DECODE' })
      // One bad key must not hide the others from a batch read.
      await b.setState({ id: 'good', state: 'STARTED' }, TTL)
      expect((await b.getStates(['bad', 'good'])).map((r) => r?.state)).toEqual([undefined, 'STARTED'])
      // Anyone can PUBLISH: stray messages are ignored and the real final write still settles.
      const waiting = b.waitFor('ok', { signal })
      const channel = `${prefix}:done:ok`
      for (;;) {
        const [, subscribers] = (await raw.pubsub('NUMSUB', channel)) as [string, number]
        if (Number(subscribers) > 0) break
        await new Promise((r) => setTimeout(r, 5))
      }
      await raw.publish(channel, 'x:5:z')
      await raw.publish(channel, '{"state":"NOPE"}')
      await b.setState({ id: 'ok', state: 'SUCCESS', result: 7 }, TTL)
      expect(await waiting).toMatchObject({ state: 'SUCCESS', result: 7 })
      expect(warnings).toHaveLength(2)
      expect(unhandled).toEqual([])
    } finally {
      process.off('unhandledRejection', onUnhandled)
      process.off('uncaughtException', onUnhandled)
    }
  })
})
