import type { Delivery, Logger } from '@errand/core'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { encodeItem } from '../src/codec.js'
import { adapter, RedisBroker } from '../src/index.js'
import { queueKeys } from '../src/keys.js'
import { deletePrefix, REDIS_URL, redisAvailable, str, text, uniquePrefix, until } from './helpers.js'

const available = await redisAvailable()

/** A logger that records every line, to prove the adapter speaks through it (and not console). */
function recordingLogger(): Logger & { lines: { level: string; message: string }[] } {
  const lines: { level: string; message: string }[] = []
  const at = (level: string) => (message: string) => {
    lines.push({ level, message })
  }
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

/**
 * Items that are not what the broker writes (other software, a hand-typed LPUSH, corruption) must
 * never take their neighbours down, never crash the process, and end in the dead letters as
 * `undecodable` with their exact bytes.
 */
describe.runIf(available)('RedisBroker with garbage in its keys', () => {
  const prefix = uniquePrefix('garbage')
  const open: RedisBroker[] = []
  let raw: Redis
  let n = 0
  const queue = () => `g${n++}`
  const keysOf = (q: string) => queueKeys(prefix, q, 9)

  const broker = async (logger?: Logger): Promise<RedisBroker> => {
    const b = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, ...(logger ? { logger } : {}) })
    await b.connect()
    open.push(b)
    return b
  }

  /** Consumes `q`, acking everything, and counts deliveries per body. */
  const drain = async (b: RedisBroker, q: string, prefetch: number) => {
    const seen = new Map<string, number>()
    const deliveries: Delivery[] = []
    const acks: Promise<void>[] = []
    await b.consume(
      q,
      (d) => {
        deliveries.push(d)
        seen.set(str(d.body), (seen.get(str(d.body)) ?? 0) + 1)
        acks.push(d.ack())
      },
      { prefetch },
    )
    return { seen, deliveries, acks }
  }

  beforeAll(() => {
    raw = new Redis(REDIS_URL)
  })
  afterEach(async () => {
    await Promise.all(open.splice(0).map((b) => b.close()))
    vi.restoreAllMocks()
  })
  afterAll(async () => {
    raw.disconnect()
    await deletePrefix(prefix)
  })

  it('dead-letters a raw item popped in the middle of a batch without losing a neighbour', async () => {
    const b = await broker()
    const q = queue()
    const bodies = Array.from({ length: 80 }, (_, i) => `job-${i}`)
    await b.publish(
      q,
      bodies.slice(0, 40).map((s) => ({ body: text(s) })),
    )
    await raw.lpush(keysOf(q).ready[0]!, 'hello world')
    await b.publish(
      q,
      bodies.slice(40).map((s) => ({ body: text(s) })),
    )
    // prefetch 50: the garbage item is the 41st of the first batch the script pops.
    const { seen, acks } = await drain(b, q, 50)
    await until(() => seen.size === 80, 10_000, 'all 80 valid jobs')
    await Promise.all(acks)
    const stats = await b.stats(q)
    expect(stats).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 1 })
    for (const body of bodies) expect(seen.get(body), body).toBe(1)
    const dead = await b.listDeadLetters(q)
    expect(dead).toHaveLength(1)
    expect(dead[0]).toMatchObject({ reason: 'undecodable', queue: q })
    expect(str(dead[0]!.body)).toBe('hello world')
    expect(dead[0]!.error?.message).toMatch(/malformed/)
    // Requeued, the exact bytes come back as a body (for core to judge).
    expect(await b.requeueDeadLetters(q)).toBe(1)
    await until(() => seen.has('hello world'), 10_000, 'the requeued bytes')
  })

  it('a ready list full of garbage is cleared in bounded steps and the job behind it still runs', async () => {
    const b = await broker()
    const q = queue()
    const ready = keysOf(q).ready[0]!
    for (let i = 0; i < 2500; i += 500) {
      await raw.lpush(ready, ...Array.from({ length: 500 }, (_, j) => `junk-${i + j}`))
    }
    await b.publish(q, [{ body: text('behind the junk') }])
    const { seen, acks } = await drain(b, q, 1)
    await until(() => seen.has('behind the junk'), 10_000, 'the job behind 2500 garbage items')
    await Promise.all(acks)
    expect(await b.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 2500 })
  })

  it('dead-letters garbage in the delayed set and in flight, and mends a malformed lease', async () => {
    const q = queue()
    const k = keysOf(q)
    // Due at once, the garbage first: the script used to fail on it after taking the whole lot.
    await raw.zadd(k.delayed, 0, 'junk-delayed')
    await raw.zadd(k.delayed, 1, encodeItem('d1', 0, text('delayed-1')))
    await raw.zadd(k.delayed, 2, encodeItem('d2', 3, text('delayed-2')))
    // A lease run out on an item that is not one.
    await raw.hset(k.inflight, 'bad1', 'junk-inflight')
    await raw.zadd(k.leases, 0, 'bad1:1')
    // A valid item in flight whose lease member lost its delivery number, and one that is garbage.
    await raw.hset(k.inflight, 'v3', encodeItem('v3', 0, text('inflight-3')))
    await raw.zadd(k.leases, 0, 'v3')
    await raw.hset(k.inflight, 'v4', encodeItem('v4', 2, text('inflight-4'))) // priority 2
    await raw.zadd(k.leases, 0, 'v4:x')
    // A lease without a message.
    await raw.zadd(k.leases, 0, 'ghost')
    const b = await broker()
    const { seen, deliveries, acks } = await drain(b, q, 10)
    await until(() => seen.size === 4, 10_000, 'the four valid messages')
    await Promise.all(acks)
    expect(Object.fromEntries(seen)).toEqual({
      'delayed-1': 1,
      'delayed-2': 1,
      'inflight-3': 1,
      'inflight-4': 1,
    })
    const attempts = Object.fromEntries(deliveries.map((d) => [str(d.body), d.attempt]))
    // A malformed lease still counts as a delivery: back with one more than the item says.
    expect(attempts).toMatchObject({ 'delayed-1': 1, 'inflight-3': 2, 'inflight-4': 2 })
    const dead = await b.listDeadLetters(q)
    expect(dead.map((d) => [d.reason, str(d.body)]).sort()).toEqual([
      ['undecodable', 'junk-delayed'],
      ['undecodable', 'junk-inflight'],
    ])
    await b.close()
    expect(await raw.hlen(k.inflight)).toBe(0)
    expect(await raw.zcard(k.leases)).toBe(0)
    expect(await raw.zcard(k.delayed)).toBe(0)
  })

  it('nack, deadLetter and close of a delivery whose stored item turned to garbage keep its bytes', async () => {
    const b = await broker()
    const q = queue()
    const k = keysOf(q)
    await b.publish(q, [{ body: text('a') }, { body: text('b') }, { body: text('c') }])
    const held: Delivery[] = []
    await b.consume(q, (d) => void held.push(d), { prefetch: 3 })
    await until(() => held.length === 3, 10_000, 'three deliveries')
    const byBody = new Map(held.map((d) => [str(d.body), d]))
    for (const [body, d] of byBody) await raw.hset(k.inflight, d.messageId, `junk-${body}`)
    await byBody.get('a')!.nack()
    await byBody.get('b')!.deadLetter({ reason: 'rejected' })
    await b.close() // gives back 'c'
    const check = await broker()
    const dead = await check.listDeadLetters(q)
    expect(dead.map((d) => [str(d.body), d.reason]).sort()).toEqual([
      ['junk-a', 'undecodable'],
      ['junk-b', 'rejected'],
      ['junk-c', 'undecodable'],
    ])
    expect(await check.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 3 })
    expect(await raw.hlen(k.inflight)).toBe(0)
  })

  it('an item shaped like a header (x:5:z) never crashes the consumer; later jobs still run', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (err: unknown) => void unhandled.push(err)
    process.on('unhandledRejection', onUnhandled)
    process.on('uncaughtException', onUnhandled)
    try {
      const b = await broker()
      const q = queue()
      const ready = keysOf(q).ready[0]!
      await b.publish(q, [{ body: text('before') }])
      const garbage = ['x:5:z', 'x:5:z:tail', ':0:0:no-id', 'id:1234567890123:0:huge-count']
      for (const g of garbage) await raw.lpush(ready, g)
      await b.publish(q, [{ body: text('after') }])
      const { seen } = await drain(b, q, 10)
      await until(() => seen.size === 2, 10_000, 'the two valid jobs')
      const dead = await b.listDeadLetters(q)
      expect(dead.map((d) => [d.reason, str(d.body)]).sort()).toEqual(
        garbage.map((g) => ['undecodable', g]).sort(),
      )
      // Still consuming: a job published now is handled.
      await b.publish(q, [{ body: text('later') }])
      await until(() => seen.has('later'), 10_000, 'a later job')
      expect(Object.fromEntries(seen)).toEqual({ before: 1, after: 1, later: 1 })
      expect(unhandled).toEqual([])
    } finally {
      process.off('unhandledRejection', onUnhandled)
      process.off('uncaughtException', onUnhandled)
    }
  })

  it('logs a throwing handler and a failing round trip through its logger, never console, and goes on', async () => {
    const consoleCalls: unknown[] = []
    for (const m of ['log', 'info', 'warn', 'error', 'debug'] as const) {
      vi.spyOn(console, m).mockImplementation((...args: unknown[]) => void consoleCalls.push([m, ...args]))
    }
    const logger = recordingLogger()
    const q = queue()
    const ready = keysOf(q).ready[0]!
    // The ready list is a string: every round trip fails (WRONGTYPE) until it is mended.
    await raw.set(ready, 'not a list')
    const b = await broker(logger)
    const seen: string[] = []
    await b.consume(
      q,
      (d) => {
        seen.push(str(d.body))
        void d.ack()
        if (str(d.body) === 'boom') throw new Error('handler bug')
      },
      { prefetch: 1 },
    )
    await until(
      () => logger.lines.some((l) => l.level === 'warn' && /WRONGTYPE/.test(l.message)),
      10_000,
      'the failed round trip logged',
    )
    await raw.del(ready)
    await b.publish(q, [{ body: text('after-fix') }])
    await until(() => seen.includes('after-fix'), 10_000, 'a job after the fix')
    await b.publish(q, [{ body: text('boom') }, { body: text('fine') }])
    await until(() => seen.includes('fine'), 10_000, 'the job after a throwing handler')
    expect(seen).toEqual(['after-fix', 'boom', 'fine'])
    expect(logger.lines).toContainEqual({ level: 'error', message: expect.stringMatching(/handler bug/) })
    expect(consoleCalls).toEqual([])
  })

  it("the adapter core resolves for a redis:// URL logs through the app's logger", async () => {
    const logger = recordingLogger()
    const q = queue()
    await raw.set(keysOf(q).ready[0]!, 'not a list')
    const b = adapter.createBroker!(`${REDIS_URL}?keyPrefix=${prefix}`, { logger }) as RedisBroker
    await b.connect()
    open.push(b)
    await b.consume(q, (d) => void d.ack(), { prefetch: 1 })
    await until(
      () => logger.lines.some((l) => l.level === 'warn' && l.message.includes(`"${q}"`)),
      10_000,
      'a warning in the given logger',
    )
    await raw.del(keysOf(q).ready[0]!)
  })
})
