import { type AsyncResult, chain, createApp, defineTask, silentLogger } from '@errand/core'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { PostgresBroker, PostgresResultBackend } from '../src/index.js'
import { DATABASE_URL, dropSchema, uniqueQueue, uniqueSchema, until } from './helpers.js'

const schema = uniqueSchema('apptx')
const queue = uniqueQueue('apptx')
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 8 })
const ran: string[] = []

const double = defineTask({
  name: 'tx.double',
  queue,
  input: z.object({ n: z.number() }),
  output: z.number(),
  handler: ({ n }) => {
    ran.push(`double ${n}`)
    return n * 2
  },
})
const addOne = defineTask({
  name: 'tx.addOne',
  queue,
  input: z.number(),
  output: z.number(),
  handler: (n) => {
    ran.push(`addOne ${n}`)
    return n + 1
  },
})

// The app and the caller's transactions share one pg.Pool, as an application would.
const app = createApp({
  broker: new PostgresBroker({ pool, schema }),
  backend: new PostgresResultBackend({ pool, schema }),
  tasks: [double, addOne],
  logger: silentLogger,
})

beforeAll(async () => {
  await app.connect()
  await pool.query(`CREATE TABLE "${schema}".orders (id serial PRIMARY KEY, item text NOT NULL)`)
  await app.worker({ concurrency: 4, queues: [queue] }).start()
})
afterAll(async () => {
  await app.close()
  await pool.end()
  await dropSchema(schema)
})

async function transaction(
  fn: (client: pg.PoolClient) => Promise<void>,
  end: 'COMMIT' | 'ROLLBACK',
): Promise<void> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    await fn(client)
    await client.query(end)
  } finally {
    client.release()
  }
}

describe('app.send(sig, { tx }) on Postgres', () => {
  it('commit: a task and a workflow run once the transaction commits, with their results', async () => {
    let single: AsyncResult<number> | undefined
    let flow: AsyncResult<number> | undefined
    await transaction(async (client) => {
      await client.query(`INSERT INTO "${schema}".orders (item) VALUES ('committed')`)
      single = await app.send(double.s({ n: 20 }), { tx: client })
      flow = await app.send(chain(double.s({ n: 5 }), addOne.s()), { tx: client })
    }, 'COMMIT')
    expect(await single!.get({ timeoutMs: 10_000 })).toBe(40)
    expect(await flow!.get({ timeoutMs: 10_000 })).toBe(11)
    expect(ran).toEqual(expect.arrayContaining(['double 20', 'double 5', 'addOne 10']))
  })

  it('rollback: neither the row nor any task exists, and nothing runs', async () => {
    ran.length = 0
    let rolledBack: AsyncResult<number> | undefined
    await transaction(async (client) => {
      await client.query(`INSERT INTO "${schema}".orders (item) VALUES ('rolled back')`)
      rolledBack = await app.send(double.s({ n: 1000 }), { tx: client })
      await app.send(chain(double.s({ n: 2000 }), addOne.s()), { tx: client })
    }, 'ROLLBACK')
    const rows = await pool.query(
      `SELECT count(*)::int AS n FROM "${schema}".orders WHERE item = 'rolled back'`,
    )
    expect(rows.rows[0].n).toBe(0)
    // A marker sent afterwards runs; the rolled-back tasks never do.
    const marker = await app.send(double.s({ n: 1 }))
    expect(await marker.get({ timeoutMs: 10_000 })).toBe(2)
    expect(ran).toEqual(['double 1'])
    expect(await rolledBack!.state()).toBe('PENDING')
    // The marker's ack follows its stored result: wait for it, then nothing else is left.
    const broker = (await app.connect()).broker
    await until(async () => (await broker.stats(queue)).inFlight === 0)
    expect(await broker.stats(queue)).toMatchObject({ ready: 0, delayed: 0, inFlight: 0 })
  })
})
