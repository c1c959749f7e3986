import type { Delivery } from '@errand/core'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { RedisBroker } from '../src/index.js'
import { deletePrefix, REDIS_URL, redisAvailable, str, text, uniquePrefix, until } from './helpers.js'

const available = await redisAvailable()

describe.runIf(available)('RedisBroker on Redis', () => {
  const prefix = uniquePrefix('broker')
  const open: RedisBroker[] = []
  let raw: Redis

  const broker = async (options: { leaseMs?: number; maxPriority?: number } = {}): Promise<RedisBroker> => {
    const b = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, ...options })
    await b.connect()
    open.push(b)
    return b
  }
  let n = 0
  const queue = () => `q${n++}`

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

  it('keeps every key of a queue under one hash tag', async () => {
    const b = await broker()
    const q = 'jobs{x}:%'
    await b.publish(q, [
      { body: text('a') },
      { body: text('b'), delayMs: 60_000 },
      { body: text('c'), priority: 3 },
    ])
    const keys = await raw.keys(`${prefix}:*`)
    const mine = keys.filter((k) => k.includes('jobs'))
    expect(mine.length).toBe(3)
    for (const key of mine) expect(key.startsWith(`${prefix}:{jobs%7Bx%7D:%25}:`)).toBe(true)
  })

  it('delivers priorities highest first, FIFO within a level', async () => {
    const b = await broker()
    const q = queue()
    await b.publish(q, [
      { body: text('low-1') },
      { body: text('high-1'), priority: 9 },
      { body: text('mid-1'), priority: 4 },
      { body: text('high-2'), priority: 9 },
      { body: text('low-2') },
    ])
    const seen: string[] = []
    await b.consume(
      q,
      (d) => {
        seen.push(str(d.body))
        void d.ack()
      },
      { prefetch: 1 },
    )
    await until(() => seen.length === 5)
    expect(seen).toEqual(['high-1', 'high-2', 'mid-1', 'low-1', 'low-2'])
  })

  it('wakes an idle consumer for a priority message and for a new earliest delay', async () => {
    const b = await broker()
    const q = queue()
    const seen: string[] = []
    await b.consume(
      q,
      (d) => {
        seen.push(str(d.body))
        void d.ack()
      },
      { prefetch: 5 },
    )
    // A far-away delay first: the consumer parks until then.
    await b.publish(q, [{ body: text('later'), delayMs: 60_000 }])
    await new Promise((r) => setTimeout(r, 50))
    const start = Date.now()
    await b.publish(q, [{ body: text('urgent'), priority: 2 }])
    await until(() => seen.includes('urgent'), 2000)
    await b.publish(q, [{ body: text('soon'), delayMs: 100 }])
    await until(() => seen.includes('soon'), 2000)
    expect(Date.now() - start).toBeLessThan(1500)
    expect(seen).not.toContain('later')
    expect((await b.stats(q)).delayed).toBe(1)
  })

  it('redelivers after the lease runs out, and a stale ack does not touch the new holder', async () => {
    const b = await broker()
    const q = queue()
    await b.publish(q, [{ body: text('x') }])
    const deliveries: Delivery[] = []
    await b.consume(q, (d) => deliveries.push(d), { prefetch: 1, leaseMs: 100 })
    await until(() => deliveries.length === 1)
    const first = deliveries[0]!
    expect(first.attempt).toBe(1)
    // A second consumer takes it over once the lease has run out.
    const other: Delivery[] = []
    await b.consume(q, (d) => other.push(d), { prefetch: 1, leaseMs: 10_000 })
    await until(() => other.length === 1, 3000, 'redelivery')
    expect(other[0]!.attempt).toBe(2)
    expect(other[0]!.messageId).toBe(first.messageId)
    await first.ack()
    expect((await b.stats(q)).inFlight).toBe(1)
    await other[0]!.ack()
    expect(await b.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 })
  })

  it('extend keeps the lease; a lost lease cannot be extended', async () => {
    const b = await broker()
    const q = queue()
    await b.publish(q, [{ body: text('x') }])
    const deliveries: Delivery[] = []
    await b.consume(q, (d) => deliveries.push(d), { prefetch: 2, leaseMs: 150 })
    await until(() => deliveries.length === 1)
    const d = deliveries[0]!
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 80))
      await d.extend!(150)
    }
    expect(deliveries.length).toBe(1)
    await d.ack()
    expect((await b.stats(q)).inFlight).toBe(0)
  })

  it('nack with a delay, then dead letters keep reason, error and the exact bytes', async () => {
    const b = await broker()
    const q = queue()
    const bytes = new Uint8Array([0, 255, 58, 10, 33, 0xc3, 0x28])
    await b.publish(q, [{ body: bytes, priority: 1 }])
    const deliveries: Delivery[] = []
    await b.consume(q, (d) => deliveries.push(d), { prefetch: 1 })
    await until(() => deliveries.length === 1)
    expect(Array.from(deliveries[0]!.body)).toEqual(Array.from(bytes))
    await deliveries[0]!.nack({ delayMs: 50 })
    await until(() => deliveries.length === 2)
    expect(deliveries[1]!.attempt).toBe(2)
    await deliveries[1]!.deadLetter({ reason: 'rejected', error: { name: 'Error', message: 'no' } })
    const dead = await b.listDeadLetters(q)
    expect(dead).toHaveLength(1)
    expect(dead[0]!.reason).toBe('rejected')
    expect(dead[0]!.error).toEqual({ name: 'Error', message: 'no' })
    expect(Array.from(dead[0]!.body)).toEqual(Array.from(bytes))
    expect(dead[0]!.id).toBe(deliveries[0]!.messageId)
    expect((await b.stats(q)).dead).toBe(1)
    expect(await b.requeueDeadLetters(q, [dead[0]!.id, 'nope'])).toBe(1)
    await until(() => deliveries.length === 3)
    expect(deliveries[2]!.attempt).toBe(3)
    expect(Array.from(deliveries[2]!.body)).toEqual(Array.from(bytes))
    await deliveries[2]!.deadLetter({ reason: 'exhausted' })
    expect(await b.purgeDeadLetters(q)).toBe(1)
    expect(await b.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 })
  })

  it('close() puts unsettled deliveries back at once, with attempt + 1', async () => {
    const b = await broker()
    const q = queue()
    await b.publish(q, [{ body: text('1') }, { body: text('2') }, { body: text('3') }])
    const held: Delivery[] = []
    await b.consume(q, (d) => held.push(d), { prefetch: 2 })
    await until(() => held.length === 2)
    await b.close()
    await expect(held[1]!.ack()).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    const b2 = await broker()
    expect(await b2.stats(q)).toMatchObject({ ready: 3, inFlight: 0 })
    const again: Delivery[] = []
    await b2.consume(q, (d) => again.push(d), { prefetch: 5 })
    await until(() => again.length === 3)
    expect(again.map((d) => [str(d.body), d.attempt])).toEqual([
      ['1', 2],
      ['2', 2],
      ['3', 1],
    ])
  })

  it('cancel() stops deliveries; handed-out ones can still be settled', async () => {
    const b = await broker()
    const q = queue()
    const held: Delivery[] = []
    const consumer = await b.consume(q, (d) => held.push(d), { prefetch: 1 })
    await b.publish(q, [{ body: text('1') }])
    await until(() => held.length === 1)
    await consumer.cancel()
    await b.publish(q, [{ body: text('2') }])
    await held[0]!.ack()
    await new Promise((r) => setTimeout(r, 50))
    expect(held.length).toBe(1)
    expect(await b.stats(q)).toMatchObject({ ready: 1, inFlight: 0 })
  })

  it('purge drops ready and delayed messages only', async () => {
    const b = await broker()
    const q = queue()
    await b.publish(q, [
      { body: text('a') },
      { body: text('b'), priority: 2 },
      { body: text('c'), delayMs: 60_000 },
    ])
    expect(await b.stats(q)).toMatchObject({ ready: 2, delayed: 1 })
    expect(await b.purge(q)).toBe(3)
    expect(await b.stats(q)).toMatchObject({ ready: 0, delayed: 0 })
  })

  it('refuses what it cannot do, with stable codes', async () => {
    const b = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, maxMessageBytes: 10, maxPriority: 2 })
    open.push(b)
    await b.connect()
    await expect(b.publish('q', [{ body: new Uint8Array(11) }])).rejects.toMatchObject({
      code: 'ERR_PAYLOAD_TOO_LARGE',
      size: 11,
      limit: 10,
    })
    await expect(b.publish('q', [{ body: text('x'), priority: 3 }])).rejects.toMatchObject({
      code: 'ERR_NOT_SUPPORTED',
    })
    await expect(b.publish('q', [{ body: text('x'), delayMs: 2 ** 41 }])).rejects.toMatchObject({
      code: 'ERR_NOT_SUPPORTED',
    })
    // Core's argument checks (BrokerBase): ERR_INVALID_OPTION naming the option.
    const invalid = (option: string) => ({ code: 'ERR_INVALID_OPTION', option, adapter: 'redis' })
    await expect(b.consume('q', () => {}, { prefetch: 0 })).rejects.toMatchObject(invalid('prefetch'))
    await expect(b.consume('q', () => {}, { prefetch: 1, leaseMs: -1 })).rejects.toMatchObject(
      invalid('leaseMs'),
    )
    await expect(b.listDeadLetters('q', { limit: 0 })).rejects.toMatchObject(invalid('limit'))
    await expect(b.purgeDeadLetters('q', [''])).rejects.toMatchObject(invalid('ids'))
    await expect(b.stats('')).rejects.toMatchObject(invalid('queue'))
    await b.close()
    await expect(b.publish('q', [{ body: text('x') }])).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    await expect(b.stats('q')).rejects.toMatchObject({ code: 'ERR_CLOSED' })
  })

  it('handles many messages with competing consumers, each exactly once', async () => {
    const b1 = await broker()
    const b2 = await broker()
    const q = queue()
    const total = 5000
    const seen = new Map<string, number>()
    const acks: Promise<void>[] = []
    const handler = (d: Delivery) => {
      const k = str(d.body)
      seen.set(k, (seen.get(k) ?? 0) + 1)
      acks.push(d.ack())
    }
    await b1.consume(q, handler, { prefetch: 20 })
    await b2.consume(q, handler, { prefetch: 7 })
    const batch = Array.from({ length: total }, (_, i) => ({ body: text(String(i)), priority: i % 3 }))
    await b1.publish(q, batch.slice(0, 2500))
    for (let i = 2500; i < total; i += 100) await b2.publish(q, batch.slice(i, i + 100))
    await until(() => seen.size === total, 20_000)
    await Promise.all(acks)
    expect([...seen.values()].every((c) => c === 1)).toBe(true)
    expect(await b1.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 })
  })

  it.each([false, true])(
    'uses a given client without closing it (auto-pipelining %s)',
    async (autoPipelining) => {
      const client = new Redis(REDIS_URL, { enableAutoPipelining: autoPipelining })
      const b = new RedisBroker({ client, keyPrefix: prefix })
      await b.connect()
      const q = queue()
      const seen: string[] = []
      await b.consume(
        q,
        (d) => {
          seen.push(str(d.body))
          void d.ack()
        },
        { prefetch: 1 },
      )
      await b.publish(q, [{ body: text('hi') }])
      await until(() => seen.length === 1)
      await b.close()
      expect(await client.ping()).toBe('PONG')
      client.disconnect()
    },
  )
})
