import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodeItem } from '../src/codec.js'
import { RedisBroker } from '../src/index.js'
import { queueKeys } from '../src/keys.js'
import { deletePrefix, REDIS_URL, redisAvailable, str, text, uniquePrefix } from './helpers.js'

const available = await redisAvailable()

/**
 * Publish calls of one tick share one command: each still resolves only once
 * Redis has its messages, a call's messages are never split or interleaved with another call's,
 * and a failure reaches every caller of the batch (none of it stored).
 */
describe.runIf(available)('RedisBroker publish calls of one turn', () => {
  const prefix = uniquePrefix('pubbatch')
  let broker: RedisBroker
  let raw: Redis
  let n = 0
  const queue = () => `b${n++}`

  beforeAll(async () => {
    broker = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix })
    await broker.connect()
    raw = new Redis(REDIS_URL)
  })
  afterAll(async () => {
    await broker?.close()
    raw?.disconnect()
    await deletePrefix(prefix)
  })

  /** Bodies of the ready list of `q`, in delivery order (oldest first). */
  const ready = async (q: string, level = 0): Promise<string[]> => {
    const items = await raw.lrangeBuffer(queueKeys(prefix, q, 9).ready[level]!, 0, -1)
    return items.reverse().map((i) => str(decodeItem(i)!.body))
  }

  it('stores every call, each resolved once stored, in call order and unsplit', async () => {
    const q = queue()
    const calls = Array.from({ length: 50 }, (_, c) =>
      broker.publish(
        q,
        Array.from({ length: 1 + (c % 3) }, (_, k) => ({ body: text(`${c}.${k}`) })),
      ),
    )
    await Promise.all(calls)
    const expected = Array.from({ length: 50 }, (_, c) =>
      Array.from({ length: 1 + (c % 3) }, (_, k) => `${c}.${k}`),
    ).flat()
    expect(await ready(q)).toEqual(expected)
    expect((await broker.stats(q)).ready).toBe(expected.length)
  })

  it('mixes plain, delayed and prioritised calls in one turn', async () => {
    const q = queue()
    await Promise.all([
      broker.publish(q, [{ body: text('plain') }]),
      broker.publish(q, [{ body: text('high'), priority: 3 }]),
      broker.publish(q, [{ body: text('later'), delayMs: 60_000 }]),
      broker.publish(q, [{ body: text('plain2') }]),
    ])
    expect(await ready(q)).toEqual(['plain', 'plain2'])
    expect(await ready(q, 3)).toEqual(['high'])
    const s = await broker.stats(q)
    expect(s.ready).toBe(3)
    expect(s.delayed).toBe(1)
  })

  it('more than one command of messages in one turn: every call stored whole', async () => {
    const q = queue()
    const sizes = [700, 700, 1, 1500, 3]
    await Promise.all(
      sizes.map((size, c) =>
        broker.publish(
          q,
          Array.from({ length: size }, (_, k) => ({ body: text(`${c}.${k}`) })),
        ),
      ),
    )
    const got = await ready(q)
    expect(got.length).toBe(sizes.reduce((a, b) => a + b, 0))
    // Each call's messages are contiguous and in order.
    for (const [c, size] of sizes.entries()) {
      const at = got.indexOf(`${c}.0`)
      if (size <= 1000)
        expect(got.slice(at, at + size)).toEqual(Array.from({ length: size }, (_, k) => `${c}.${k}`))
      else expect(got.filter((b) => b.startsWith(`${c}.`)).length).toBe(size)
    }
  })

  it('a batch that fails rejects every caller of it and stores none', async () => {
    const q = queue()
    await raw.set(queueKeys(prefix, q, 9).ready[0]!, 'not a list')
    const results = await Promise.allSettled([
      broker.publish(q, [{ body: text('a') }]),
      broker.publish(q, [{ body: text('b') }, { body: text('c') }]),
    ])
    for (const r of results) {
      expect(r.status).toBe('rejected')
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'ERR_CONNECTION' })
    }
    await raw.del(queueKeys(prefix, q, 9).ready[0]!)
    expect((await broker.stats(q)).ready).toBe(0)
  })

  it('publishes made before close still go out', async () => {
    const b = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix })
    await b.connect()
    const q = queue()
    const sent = b.publish(q, [{ body: text('last') }])
    const closing = b.close()
    await sent
    await closing
    expect(await ready(q)).toEqual(['last'])
  })
})
