import type { Delivery } from '@errand/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PostgresBroker, type PostgresBrokerOptions } from '../src/index.js'
import {
  bytes,
  collectingLogger,
  dropSchema,
  schemaUrl,
  sql,
  text,
  uniqueQueue,
  uniqueSchema,
  until,
} from './helpers.js'

const schema = uniqueSchema('b')
const brokers: PostgresBroker[] = []
async function open(options: Partial<PostgresBrokerOptions> = {}): Promise<PostgresBroker> {
  const b = new PostgresBroker({ url: schemaUrl(schema), logger: collectingLogger(), ...options })
  brokers.push(b)
  await b.connect()
  return b
}

/** Counts the statements a broker sends through its pool. */
function countQueries(broker: PostgresBroker): { readonly count: number } {
  const db = (broker as unknown as { db: { query: (...args: unknown[]) => Promise<unknown> } }).db
  const original = db.query.bind(db)
  const counter = { count: 0 }
  db.query = (...args: unknown[]) => {
    counter.count++
    return original(...args)
  }
  return counter
}

beforeAll(async () => {
  await open()
})
afterAll(async () => {
  await Promise.all(brokers.map((b) => b.close()))
  await dropSchema(schema)
})

describe('postgres broker', () => {
  it('delivers a batch in priority then FIFO order and deletes on ack', async () => {
    const b = await open()
    const q = uniqueQueue()
    await b.publish(q, [{ body: bytes('a') }, { body: bytes('b') }, { body: bytes('p'), priority: 5 }])
    await b.publish(q, [{ body: bytes('c') }])
    const got: Delivery[] = []
    const c = await b.consume(q, (d) => got.push(d), { prefetch: 10 })
    await until(() => got.length === 4)
    expect(got.map((d) => text(d.body))).toEqual(['p', 'a', 'b', 'c'])
    expect(await b.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 4, dead: 0 })
    await Promise.all(got.map((d) => d.ack()))
    const rows = await sql(`SELECT 1 FROM "${schema}".jobs WHERE queue = $1`, [q])
    expect(rows).toHaveLength(0)
    await c.cancel()
  })

  it('a batch larger than one statement carries is split, in one transaction, in order', async () => {
    const b = await open({ maxStatementBytes: 100_000 })
    const q = uniqueQueue()
    // 8 × 40 kB = 320 kB: four statements of two bodies (and one body alone fits anyway).
    const messages = Array.from({ length: 8 }, (_, i) => ({ body: new Uint8Array(40_000).fill(i + 1) }))
    await b.publish(q, [...messages, { body: new Uint8Array(150_000).fill(9) }])
    const got: Delivery[] = []
    await b.consume(q, (d) => got.push(d), { prefetch: 9 })
    await until(() => got.length === 9)
    expect(got.map((d) => [d.body.byteLength, d.body[0], d.body[d.body.byteLength - 1]])).toEqual([
      ...messages.map((_, i) => [40_000, i + 1, i + 1]),
      [150_000, 9, 9],
    ])
    await Promise.all(got.map((d) => d.ack()))
  })

  it('an idle consumer runs no query; a NOTIFY wakes it within milliseconds', async () => {
    const b = await open({ pollIntervalMs: 60_000 })
    const producer = await open()
    const q = uniqueQueue()
    const got: Delivery[] = []
    const counter = countQueries(b)
    await b.consume(q, (d) => got.push(d), { prefetch: 4 })
    // The first fetch and the look for a next due time, then nothing.
    await until(() => counter.count >= 2)
    const settled = counter.count
    await new Promise((r) => setTimeout(r, 300))
    expect(counter.count).toBe(settled)
    const sent = Date.now()
    await producer.publish(q, [{ body: bytes('wake') }])
    await until(() => got.length === 1)
    expect(Date.now() - sent).toBeLessThan(200)
    await got[0]!.ack()
  })

  it('a delay published by another process wakes an idle consumer on time', async () => {
    const b = await open({ pollIntervalMs: 60_000 })
    const producer = await open()
    const q = uniqueQueue()
    const got: { at: number; d: Delivery }[] = []
    await b.consume(q, (d) => got.push({ at: Date.now(), d }), { prefetch: 4 })
    const sent = Date.now()
    await producer.publish(q, [{ body: bytes('later'), delayMs: 400 }])
    await until(() => got.length === 1, 5000)
    expect(got[0]!.at - sent).toBeGreaterThanOrEqual(395)
    expect(got[0]!.at - sent).toBeLessThan(900)
    await got[0]!.d.ack()
  })

  it('delayed rows of a higher priority do not slow the fetch of ready ones', async () => {
    const b = await open()
    const q = uniqueQueue()
    const delayed = Array.from({ length: 5000 }, () => ({
      body: bytes('later'),
      priority: 9,
      delayMs: 3_600_000,
    }))
    await b.publish(q, delayed)
    await b.publish(q, [{ body: bytes('now') }])
    const plan = await sql<{ 'QUERY PLAN': string }>(
      `EXPLAIN (ANALYZE, FORMAT TEXT) SELECT id FROM "${schema}".jobs
        WHERE queue = $1 AND priority = 9 AND run_at <= now() ORDER BY run_at, id LIMIT 10`,
      [q],
    )
    // The range condition on run_at stops the scan before any delayed row.
    expect(plan.map((r) => r['QUERY PLAN']).join('\n')).toMatch(/Index Cond: .*run_at <= now\(\)/)
    const got: Delivery[] = []
    await b.consume(q, (d) => got.push(d), { prefetch: 1 })
    await until(() => got.length === 1)
    expect(text(got[0]!.body)).toBe('now')
    await got[0]!.ack()
    expect(await b.purge(q)).toBe(5000)
  })

  it('the LISTEN connection comes back by itself after being killed', async () => {
    const logger = collectingLogger()
    const b = await open({ pollIntervalMs: 60_000, logger })
    const q = uniqueQueue()
    const got: Delivery[] = []
    await b.consume(q, (d) => got.push(d), { prefetch: 4 })
    const killed = await sql<{ ok: boolean }>(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1`,
      [`errand-listen:${schema}`],
    )
    expect(killed.length).toBeGreaterThan(0)
    await until(() => logger.lines.some((l) => l.includes('LISTEN connection lost')), 5000)
    await until(() => b.listener.connected, 5000)
    const sent = Date.now()
    await b.publish(q, [{ body: bytes('after') }])
    await until(() => got.length === 1, 5000)
    expect(Date.now() - sent).toBeLessThan(1000)
    await got[0]!.ack()
  })

  it('survives its pool connections being killed: settles retry, consumers keep consuming', async () => {
    // Its own schema, so that only this broker's connections are killed.
    const own = uniqueSchema('kill')
    const b = new PostgresBroker({ url: schemaUrl(own), pollIntervalMs: 60_000, logger: collectingLogger() })
    try {
      await b.connect()
      const q = uniqueQueue()
      const got: Delivery[] = []
      await b.consume(q, (d) => got.push(d), { prefetch: 10 })
      await b.publish(q, [{ body: bytes('1') }, { body: bytes('2') }])
      await until(() => got.length === 2)
      await sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE $1`, [
        `errand%:${own}`,
      ])
      await Promise.all(got.map((d) => d.ack()))
      await b.publish(q, [{ body: bytes('3') }])
      await until(() => got.length === 3, 10_000)
      expect(text(got[2]!.body)).toBe('3')
      expect(got[2]!.attempt).toBe(1)
      await got[2]!.ack()
      expect((await b.stats(q)).inFlight).toBe(0)
    } finally {
      await b.close()
      await dropSchema(own)
    }
  })

  it('VACUUMs the jobs table itself after enough deletes (autovacuum may be off)', async () => {
    const b = await open({ vacuumAfterDeletes: 500 })
    const q = uniqueQueue()
    const before = await sql<{ n: string | null }>(
      `SELECT vacuum_count::text AS n FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'jobs'`,
      [schema],
    )
    await b.publish(
      q,
      Array.from({ length: 600 }, (_, i) => ({ body: bytes(String(i)) })),
    )
    let n = 0
    await b.consume(
      q,
      (d) => {
        n++
        void d.ack()
      },
      { prefetch: 100 },
    )
    await until(() => n === 600)
    await until(async () => {
      const after = await sql<{ n: string }>(
        `SELECT vacuum_count::text AS n FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'jobs'`,
        [schema],
      )
      return Number(after[0]?.n ?? 0) > Number(before[0]?.n ?? 0)
    }, 10_000)
  })

  it('close() returns unsettled deliveries at once and wakes other consumers', async () => {
    const a = await open()
    const other = await open({ pollIntervalMs: 60_000 })
    const q = uniqueQueue()
    const gotA: Delivery[] = []
    const gotB: Delivery[] = []
    await a.consume(q, (d) => gotA.push(d), { prefetch: 5, leaseMs: 60_000 })
    await a.publish(q, [{ body: bytes('x') }, { body: bytes('y') }])
    await until(() => gotA.length === 2)
    await other.consume(q, (d) => gotB.push(d), { prefetch: 5 })
    await a.close()
    await until(() => gotB.length === 2, 2000)
    expect(gotB.map((d) => d.attempt)).toEqual([2, 2])
    await expect(gotA[0]!.ack()).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    await Promise.all(gotB.map((d) => d.ack()))
  })
})
