// The two optional Delivery hooks on Redis: ackWithRecord (the task record and the ack in the
// consumer's one script when broker and backend share a standalone Redis, db and prefix) and lost
// (an extension that finds the lease gone aborts the delivery's signal with ERR_LOST).
import {
  createApp,
  type Delivery,
  DeliveryLostError,
  defineTask,
  isErrandError,
  silentLogger,
  type TaskRecord,
} from '@errand/core'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { z } from 'zod'
import { RedisBroker, RedisResultBackend } from '../src/index.js'
import { deletePrefix, REDIS_URL, redisAvailable, text, uniquePrefix, until } from './helpers.js'

const available = await redisAvailable()

/** `REDIS_URL` on another db. */
function onDb(db: number): string {
  const url = new URL(REDIS_URL)
  url.pathname = `/${db}`
  return url.toString()
}

const TTL = { ttlMs: 60_000 }

describe.runIf(available)('Redis deliveries: ackWithRecord and lost', () => {
  const prefix = uniquePrefix('fused')
  const open: { close(): Promise<void> }[] = []
  let raw: Redis
  let n = 0
  const queue = () => `q${n++}`

  async function broker(options: { keyPrefix?: string; leaseMs?: number } = {}): Promise<RedisBroker> {
    const b = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, logger: silentLogger, ...options })
    await b.connect()
    open.push(b)
    return b
  }
  async function backend(options: { url?: string; keyPrefix?: string } = {}): Promise<RedisResultBackend> {
    const r = new RedisResultBackend({ url: REDIS_URL, keyPrefix: prefix, ...options })
    await r.connect()
    open.push(r)
    return r
  }
  /** One published message, taken by a fresh consumer: its delivery. */
  async function held(b: RedisBroker, q: string, leaseMs = 30_000): Promise<Delivery> {
    await b.publish(q, [{ body: text('x') }])
    const got: Delivery[] = []
    await b.consume(q, (d) => got.push(d), { prefetch: 1, leaseMs })
    await until(() => got.length === 1)
    return got[0]!
  }

  beforeAll(() => {
    raw = new Redis(REDIS_URL)
  })
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()))
  })
  afterAll(async () => {
    raw.disconnect()
    await deletePrefix(prefix)
    const db1 = new Redis(onDb(1))
    const keys = await db1.keys(`${prefix}:*`)
    if (keys.length > 0) await db1.del(...keys)
    db1.disconnect()
  })

  describe('ackWithRecord', () => {
    it('stores the record (TTL, waiters woken) and acks, in one step', async () => {
      const b = await broker()
      const r = await backend()
      const q = queue()
      const d = await held(b, q)
      const waiting = r.waitFor('t-ok', { signal: new AbortController().signal })
      const record: TaskRecord = { id: 't-ok', state: 'SUCCESS', task: 'demo', result: { n: 42 } }
      expect(await d.ackWithRecord!(r, record, TTL)).toBe('SUCCESS')
      expect(await waiting).toEqual(record)
      expect(await r.getState('t-ok')).toEqual(record)
      const ttl = await raw.pttl(`${prefix}:result:t-ok`)
      expect(ttl).toBeGreaterThan(50_000)
      expect(ttl).toBeLessThanOrEqual(60_000)
      expect(await b.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 })
    })

    it('never overwrites CANCELED (and still acks), like setState', async () => {
      const b = await broker()
      const r = await backend()
      const q = queue()
      await r.setState({ id: 't-canceled', state: 'CANCELED' }, TTL)
      const d = await held(b, q)
      expect(await d.ackWithRecord!(r, { id: 't-canceled', state: 'SUCCESS', result: 1 }, TTL)).toBe(
        'CANCELED',
      )
      expect((await r.getState('t-canceled'))?.state).toBe('CANCELED')
      expect((await b.stats(q)).inFlight).toBe(0)
    })

    it('a non-final record is stored and not published', async () => {
      const b = await broker()
      const r = await backend()
      const q = queue()
      const d = await held(b, q)
      const sub = raw.duplicate()
      const heard: string[] = []
      sub.on('message', (_channel: string, message: string) => heard.push(message))
      await sub.subscribe(`${prefix}:done:t-retry`, `${prefix}:done:t-final`)
      expect(await d.ackWithRecord!(r, { id: 't-retry', state: 'RETRY' }, TTL)).toBe('RETRY')
      expect((await r.getState('t-retry'))?.state).toBe('RETRY')
      await r.setState({ id: 't-final', state: 'FAILURE' }, TTL)
      await until(() => heard.length === 1)
      expect(JSON.parse(heard[0]!).state).toBe('FAILURE')
      sub.disconnect()
    })

    it('does nothing and returns undefined for a backend on another prefix or db', async () => {
      const b = await broker()
      const q = queue()
      const d = await held(b, q)
      const elsewhere = [await backend({ keyPrefix: `${prefix}-other` }), await backend({ url: onDb(1) })]
      for (const r of elsewhere) {
        expect(await d.ackWithRecord!(r, { id: 't-elsewhere', state: 'SUCCESS' }, TTL)).toBeUndefined()
        expect(await r.getState('t-elsewhere')).toBeUndefined()
      }
      expect(await raw.exists(`${prefix}:result:t-elsewhere`)).toBe(0)
      // A backend of another kind is not ours either.
      const notRedis = { setState: async () => 'SUCCESS' } as never
      expect(await d.ackWithRecord!(notRedis, { id: 't-elsewhere', state: 'SUCCESS' }, TTL)).toBeUndefined()
      // Still held: nothing was acked, and the delivery can be settled as usual.
      expect((await b.stats(q)).inFlight).toBe(1)
      await d.ack()
      expect((await b.stats(q)).inFlight).toBe(0)
    })

    it('checks the record like setState before doing anything', async () => {
      const b = await broker()
      const r = await backend()
      const q = queue()
      const d = await held(b, q)
      await expect(d.ackWithRecord!(r, { id: '', state: 'SUCCESS' }, TTL)).rejects.toThrow(TypeError)
      await expect(d.ackWithRecord!(r, { id: 'x', state: 'NOPE' as never }, TTL)).rejects.toThrow(TypeError)
      await expect(d.ackWithRecord!(r, { id: 'x', state: 'SUCCESS' }, { ttlMs: 0 })).rejects.toThrow(
        TypeError,
      )
      expect((await b.stats(q)).inFlight).toBe(1)
      expect(await d.ackWithRecord!(r, { id: 'x', state: 'SUCCESS' }, TTL)).toBe('SUCCESS')
    })

    it('settles once: later ack, nack, deadLetter and ackWithRecord change nothing', async () => {
      const b = await broker()
      const r = await backend()
      const q = queue()
      const d = await held(b, q)
      const first = d.ackWithRecord!(r, { id: 't-once', state: 'SUCCESS', result: 1 }, TTL)
      // Asked while the fused ack is on its way: shares it, writes nothing.
      const during = d.ackWithRecord!(r, { id: 't-once', state: 'FAILURE' }, TTL)
      expect(await first).toBe('SUCCESS')
      expect(await during).toBeUndefined()
      await d.ack()
      await d.nack()
      await d.deadLetter({ reason: 'rejected' })
      expect(await d.ackWithRecord!(r, { id: 't-once', state: 'FAILURE' }, TTL)).toBeUndefined()
      expect(await b.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 })
      expect((await r.getState('t-once'))?.state).toBe('SUCCESS')
    })

    it('batches fused and plain acks of one tick in one round trip with the fetch', async () => {
      const b = await broker()
      const r = await backend()
      const q = queue()
      await b.publish(q, [{ body: text('a') }, { body: text('b') }, { body: text('c') }, { body: text('d') }])
      const got: Delivery[] = []
      await b.consume(q, (d) => got.push(d), { prefetch: 3 })
      await until(() => got.length === 3)
      const [one, two, three] = got as [Delivery, Delivery, Delivery]
      const states = await Promise.all([
        one.ackWithRecord!(r, { id: 't-b1', state: 'SUCCESS', result: 1 }, TTL),
        two.ack(),
        three.ackWithRecord!(r, { id: 't-b3', state: 'SUCCESS', result: 3 }, TTL),
      ])
      expect(states).toEqual(['SUCCESS', undefined, 'SUCCESS'])
      expect((await r.getStates(['t-b1', 't-b3'])).map((s) => s?.result)).toEqual([1, 3])
      // The same round trip fetched the fourth message.
      await until(() => got.length === 4)
      await got[3]!.ack()
      expect(await b.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 })
    })

    it('the record keys after the queue keys do not shift the priority levels', async () => {
      const b = await broker()
      const r = await backend()
      const q = queue()
      await b.publish(q, [{ body: text('first') }])
      const got: Delivery[] = []
      await b.consume(q, (x) => got.push(x), { prefetch: 1 })
      await until(() => got.length === 1)
      // Due while the consumer is full: the fused ack's script moves it to the top level (a list
      // found by counting levels from the end of KEYS), then fetches it.
      await b.publish(q, [{ body: text('urgent'), priority: 9, delayMs: 30 }])
      await new Promise((resolve) => setTimeout(resolve, 60))
      expect((await b.stats(q)).delayed).toBe(1)
      const record = { id: 't-levels', state: 'SUCCESS' as const, result: 'ok' }
      expect(await got[0]!.ackWithRecord!(r, record, TTL)).toBe('SUCCESS')
      await until(() => got.length === 2)
      expect(new TextDecoder().decode(got[1]!.body)).toBe('urgent')
      expect(await raw.type(`${prefix}:result:t-levels`)).toBe('string')
      expect((await r.getState('t-levels'))?.result).toBe('ok')
      await got[1]!.ack()
      expect(await b.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 })
    })

    it('a record key of the wrong type: neither written nor acked, the error is reported', async () => {
      const b = await broker()
      const r = await backend()
      const q = queue()
      await raw.rpush(`${prefix}:result:t-list`, 'not a record')
      await expect(r.setState({ id: 't-list', state: 'SUCCESS' }, TTL)).rejects.toMatchObject({
        code: 'ERR_CONNECTION',
      })
      const d = await held(b, q)
      const failed = await d.ackWithRecord!(r, { id: 't-list', state: 'SUCCESS' }, TTL).then(
        () => undefined,
        (err: unknown) => err,
      )
      expect(failed).toMatchObject({ code: 'ERR_CONNECTION' })
      expect(String(failed)).toContain('WRONGTYPE')
      expect(await raw.type(`${prefix}:result:t-list`)).toBe('list')
      expect((await b.stats(q)).inFlight).toBe(1)
      // Not settled: it may be settled again.
      await d.ack()
      expect((await b.stats(q)).inFlight).toBe(0)
    })

    it('a worker on one Redis stores outcomes through the fused ack; result.get() wakes', async () => {
      const q = queue()
      const b = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, logger: silentLogger })
      const r = new RedisResultBackend({ url: REDIS_URL, keyPrefix: prefix, logger: silentLogger })
      const setState = vi.spyOn(r, 'setState')
      const double = defineTask({
        name: 'fused.double',
        queue: q,
        input: z.number(),
        handler: (x) => x * 2,
      })
      const app = createApp({ broker: b, backend: r, tasks: [double], logger: silentLogger })
      open.push(app)
      await app.connect()
      const worker = await app.worker({ concurrency: 2, queues: [q] }).start()
      const sent = await app.sendMany([1, 2, 3, 4, 5].map((x) => double.s(x)))
      expect(await Promise.all(sent.map((s) => s.get({ timeoutMs: 10_000 })))).toEqual([2, 4, 6, 8, 10])
      // The SUCCESS records went through the broker's script, never through setState.
      const states = setState.mock.calls.map(([record]) => record.state)
      expect(states).not.toContain('SUCCESS')
      expect(states).toContain('STARTED')
      expect(await b.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 })
      await worker.stop()
    })
  })

  describe('lost', () => {
    it('an extension after another consumer took the message over aborts lost with ERR_LOST', async () => {
      const a = await broker()
      const other = await broker()
      const r = await backend()
      const q = queue()
      const aGot: Delivery[] = []
      await a.consume(q, (d) => aGot.push(d), { prefetch: 1, leaseMs: 100 })
      await a.publish(q, [{ body: text('taken back') }])
      await until(() => aGot.length === 1)
      const first = aGot[0]!
      expect(first.lost?.aborted).toBe(false)
      // a holds it without extending; b waits and takes it over once the lease ran out.
      const bGot: Delivery[] = []
      await other.consume(q, (d) => bGot.push(d), { prefetch: 1 })
      await until(() => bGot.length === 1, 3000, 'takeover')
      expect(bGot[0]!.attempt).toBe(2)
      expect(first.lost?.aborted).toBe(false)
      await first.extend!(1000)
      expect(first.lost?.aborted).toBe(true)
      const reason = first.lost?.reason as Error
      expect(reason).toBeInstanceOf(DeliveryLostError)
      expect(isErrandError(reason, 'ERR_LOST')).toBe(true)
      expect(reason.message).toContain('lease')
      expect(bGot[0]!.lost?.aborted).toBe(false)
      // a's slot is free again (prefetch 1): the next message comes to a.
      await a.publish(q, [{ body: text('next') }])
      await until(() => aGot.length === 2, 3000, 'the next delivery to a')
      await aGot[1]!.ack()
      // Settling the lost delivery does nothing: b still holds the message.
      await first.ack()
      await first.nack()
      expect(await first.ackWithRecord!(r, { id: 't-lost', state: 'SUCCESS' }, TTL)).toBeUndefined()
      expect(await r.getState('t-lost')).toBeUndefined()
      expect(await a.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 1, dead: 0 })
      await bGot[0]!.ack()
      expect(await a.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 })
    })

    it('an extension racing our own ack does not signal lost', async () => {
      const b = await broker()
      const q = queue()
      const d = await held(b, q)
      const extended = d.extend!(1000)
      const acked = d.ack()
      await Promise.all([extended, acked])
      expect(d.lost?.aborted).toBe(false)
      expect((await b.stats(q)).inFlight).toBe(0)
    })

    it('a worker whose lease was taken over sees ctx.signal abort with ERR_LOST and stores nothing', async () => {
      const q = queue()
      const b = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, logger: silentLogger })
      const r = new RedisResultBackend({ url: REDIS_URL, keyPrefix: prefix, logger: silentLogger })
      let started: () => void = () => {}
      const running = new Promise<void>((resolve) => {
        started = resolve
      })
      let seen: unknown
      const waits = defineTask({
        name: 'fused.waits',
        queue: q,
        input: z.null(),
        handler: async (_, ctx) => {
          started()
          await new Promise((_, reject) => {
            ctx.signal.addEventListener('abort', () => {
              seen = ctx.signal.reason
              reject(ctx.signal.reason)
            })
          })
        },
      })
      const app = createApp({ broker: b, backend: r, tasks: [waits], logger: silentLogger })
      open.push(app)
      await app.connect()
      // Lease 3 s: the worker extends about every second, so the takeover below cannot race it.
      const worker = await app.worker({ concurrency: 1, queues: [q], leaseMs: 3000 }).start()
      const sent = await app.send(waits.s(null))
      await running
      // Started after the worker took the message, so only a takeover can bring it here.
      const other = await broker()
      const taken: Delivery[] = []
      await other.consume(q, (d) => taken.push(d), { prefetch: 1 })
      // The lease runs out now (its deadline moved to the past) and the other consumer is woken
      // (the wake-up item on the ready list): it takes the message over as delivery 2.
      const keys = `${prefix}:{${q}}`
      const [member] = await raw.zrange(`${keys}:leases`, '0', '-1')
      expect(member).toMatch(/:1$/)
      await raw.multi().zadd(`${keys}:leases`, 'XX', 0, member!).lpush(`${keys}:ready`, '!').exec()
      await until(() => taken.length === 1, 3000, 'takeover')
      expect(taken[0]!.attempt).toBe(2)
      // The worker's next extension finds the lease gone: the handler's signal aborts.
      await expect.poll(() => seen, { timeout: 5000 }).toBeInstanceOf(Error)
      expect(isErrandError(seen, 'ERR_LOST')).toBe(true)
      // Nothing stored beyond STARTED, nothing settled by the worker: the other consumer holds it.
      await new Promise((resolve) => setTimeout(resolve, 100))
      expect((await app.result(sent.id).info())?.state).toBe('STARTED')
      expect((await b.stats(q)).inFlight).toBe(1)
      await taken[0]!.ack()
      expect(await b.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 })
      await worker.stop()
    })
  })
})
