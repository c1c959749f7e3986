import type { Delivery } from '@errand/core'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PostgresBroker } from '../src/index.js'
import { bytes, DATABASE_URL, dropSchema, text, uniqueQueue, uniqueSchema, until } from './helpers.js'

const schema = uniqueSchema('tx')
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 5 })
let broker: PostgresBroker

beforeAll(async () => {
  // The broker borrows the application's own pool: the same one its transactions come from.
  broker = new PostgresBroker({ pool, schema })
  await broker.connect()
  await pool.query(`CREATE TABLE "${schema}".orders (id serial PRIMARY KEY, item text NOT NULL)`)
})
afterAll(async () => {
  await broker.close()
  // A pool passed in stays the caller's: close() must not have ended it.
  expect((await pool.query('SELECT 1 AS ok')).rows[0].ok).toBe(1)
  await pool.end()
  await dropSchema(schema)
})

async function inTransaction(
  fn: (client: pg.PoolClient) => Promise<void>,
  outcome: 'COMMIT' | 'ROLLBACK',
): Promise<void> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    await fn(client)
    await client.query(outcome)
  } finally {
    client.release()
  }
}

describe('transactional enqueue (publishInTransaction)', () => {
  it('commit: the job exists with the business row, and consumers wake only at commit', async () => {
    const q = uniqueQueue('tx')
    const got: Delivery[] = []
    const consumer = await broker.consume(q, (d) => got.push(d), { prefetch: 5 })
    let committedAt = 0
    await inTransaction(async (client) => {
      await client.query(`INSERT INTO "${schema}".orders (item) VALUES ('book')`)
      await broker.publishInTransaction(client, q, [
        { body: bytes('ship book') },
        { body: bytes('mail receipt') },
      ])
      // Inside the transaction the jobs are invisible to everyone else.
      expect((await broker.stats(q)).ready).toBe(0)
      await new Promise((r) => setTimeout(r, 50))
      expect(got).toHaveLength(0)
      committedAt = Date.now()
    }, 'COMMIT')
    await until(() => got.length === 2, 5000)
    // Woken by the NOTIFY sent at commit, not by the safety poll (5 s).
    expect(Date.now() - committedAt).toBeLessThan(1000)
    expect(got.map((d) => text(d.body)).sort()).toEqual(['mail receipt', 'ship book'])
    await Promise.all(got.map((d) => d.ack()))
    await consumer.cancel()
  })

  it('rollback: neither the business row nor the job exists, and nothing is delivered', async () => {
    const q = uniqueQueue('tx')
    const got: Delivery[] = []
    const consumer = await broker.consume(q, (d) => got.push(d), { prefetch: 5 })
    await inTransaction(async (client) => {
      await client.query(`INSERT INTO "${schema}".orders (item) VALUES ('ghost')`)
      await broker.publishInTransaction(client, q, [{ body: bytes('never') }])
    }, 'ROLLBACK')
    const orders = await pool.query(`SELECT count(*)::int AS n FROM "${schema}".orders WHERE item = 'ghost'`)
    expect(orders.rows[0].n).toBe(0)
    expect(await broker.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 })
    // A marker published afterwards arrives alone.
    await broker.publish(q, [{ body: bytes('marker') }])
    await until(() => got.length === 1, 5000)
    expect(text(got[0]!.body)).toBe('marker')
    await got[0]!.ack()
    await consumer.cancel()
  })

  it('works with a plain pg.Client and keeps delays and priorities', async () => {
    const q = uniqueQueue('tx')
    const client = new pg.Client({ connectionString: DATABASE_URL })
    await client.connect()
    try {
      await client.query('BEGIN')
      await broker.publishInTransaction(client, q, [{ body: bytes('later'), delayMs: 60_000, priority: 3 }])
      await client.query('COMMIT')
    } finally {
      await client.end()
    }
    expect(await broker.stats(q)).toEqual({ ready: 0, delayed: 1, inFlight: 0, dead: 0 })
    expect(await broker.purge(q)).toBe(1)
  })

  it('validates like publish, and refuses something that is not a client', async () => {
    const q = uniqueQueue('tx')
    await expect(broker.publishInTransaction({} as never, q, [{ body: bytes('x') }])).rejects.toThrow(
      TypeError,
    )
    const client = await pool.connect()
    try {
      await expect(
        broker.publishInTransaction(client, q, [{ body: bytes('x'), priority: 99 }]),
      ).rejects.toMatchObject({ code: 'ERR_NOT_SUPPORTED' })
      await expect(
        broker.publishInTransaction(client, q, [
          { body: new Uint8Array(broker.capabilities.maxMessageBytes + 1) },
        ]),
      ).rejects.toMatchObject({ code: 'ERR_PAYLOAD_TOO_LARGE' })
    } finally {
      client.release()
    }
  })
})
