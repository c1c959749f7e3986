import { createApp, defineTask } from '@errand/core'
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { PostgresBroker, SCHEMA_VERSION } from '../src/index.js'
import { migrateSchema } from '../src/migrations.js'
import {
  collectingLogger,
  DATABASE_URL,
  dropSchema,
  schemaUrl,
  sql,
  uniqueQueue,
  uniqueSchema,
  until,
} from './helpers.js'

const schemas: string[] = []
function fresh(): string {
  const s = uniqueSchema('junk')
  schemas.push(s)
  return s
}
afterAll(async () => {
  for (const s of schemas) await dropSchema(s)
})

const INT_MAX = 2_147_483_647

describe('postgres: a garbage row never blocks its neighbours', () => {
  it('garbage bodies and a spent delivery counter between valid jobs: every valid job runs, the garbage is dead-lettered with a reason', async () => {
    const schema = fresh()
    const queue = uniqueQueue('junk')
    const handled: number[] = []
    const task = defineTask({
      name: `junk.task.${queue}`,
      queue,
      input: z.number(),
      handler: (n) => {
        handled.push(n)
      },
    })
    const logger = collectingLogger()
    const app = createApp({
      broker: new PostgresBroker({ url: schemaUrl(schema), logger }),
      tasks: [task],
      logger,
    })
    try {
      await app.connect()
      const junk = [Buffer.from([0xff, 0xfe, 0x00]), Buffer.from('{"not":"an envelope"}'), Buffer.alloc(0)]
      // Interleaved by id and run_at: job, garbage, job, garbage…
      for (let i = 0; i < 12; i++) {
        await app.send(task.s(i))
        const body = junk[i % junk.length]
        if (i % 4 === 1 && body !== undefined) {
          await sql(`INSERT INTO "${schema}".jobs (queue, body) VALUES ($1, $2)`, [queue, body])
        }
      }
      // A valid job whose delivery counter can go no higher: it used to fail every fetch of the queue.
      const [spent] = await sql<{ id: string }>(
        `UPDATE "${schema}".jobs SET deliveries = $2
         WHERE id = (SELECT min(id) + 4 FROM "${schema}".jobs WHERE queue = $1) RETURNING id`,
        [queue, INT_MAX],
      )
      expect(spent).toBeDefined()

      await app.worker({ concurrency: 2, prefetch: 2, queues: [queue] }).start()
      const broker = (await app.connect()).broker
      await until(async () => (await broker.stats(queue)).dead === 4 && handled.length === 11, 20_000)
      expect(new Set(handled).size).toBe(11)
      const dead = await broker.listDeadLetters(queue)
      expect(dead.map((d) => d.reason).sort()).toEqual([
        'exhausted',
        'undecodable',
        'undecodable',
        'undecodable',
      ])
      for (const d of dead) expect(d.error?.message).toBeTruthy()
      const exhausted = dead.find((d) => d.reason === 'exhausted')
      expect(exhausted?.error?.message).toMatch(/delivery counter/)
      expect((await broker.stats(queue)).ready).toBe(0)
    } finally {
      await app.close()
    }
  })

  it(`migrating an existing table moves out-of-range rows to the dead letters and then constrains the columns`, async () => {
    const schema = fresh()
    const queue = uniqueQueue('old')
    const client = new pg.Client({ connectionString: DATABASE_URL })
    await client.connect()
    try {
      // A schema as the previous release left it, with rows no fetch could ever take.
      await migrateSchema(client as never, schema, 3)
      await client.query(
        `INSERT INTO "${schema}".jobs (queue, priority, deliveries, body) VALUES
           ($1, 0, 0, '\\x01'), ($1, 42, 0, '\\x02'), ($1, -1, 0, '\\x03'), ($1, 9, 0, '\\x04'), ($1, 3, -5, '\\x05')`,
        [queue],
      )
    } finally {
      await client.end()
    }
    const broker = new PostgresBroker({ url: schemaUrl(schema), logger: collectingLogger() })
    try {
      await broker.connect()
      const versions = await sql<{ version: number }>(
        `SELECT version FROM "${schema}".migrations ORDER BY version`,
      )
      expect(versions.at(-1)?.version).toBe(SCHEMA_VERSION)
      expect(await broker.stats(queue)).toMatchObject({ ready: 2, dead: 3 })
      const dead = await broker.listDeadLetters(queue)
      expect(dead.map((d) => [d.reason, d.body[0]])).toEqual([
        ['undecodable', 2],
        ['undecodable', 3],
        ['undecodable', 5],
      ])
      expect(dead[0]?.error?.message).toMatch(/priority 42 is outside 0\.\.9/)
      expect(dead[2]?.error?.message).toMatch(/deliveries -5/)
      const constraints = await sql<{ conname: string; convalidated: boolean }>(
        `SELECT conname, convalidated FROM pg_constraint
         WHERE conrelid = $1::regclass AND contype = 'c' ORDER BY conname`,
        [`"${schema}".jobs`],
      )
      expect(constraints).toEqual([
        { conname: 'jobs_deliveries_range', convalidated: true },
        { conname: 'jobs_priority_range', convalidated: true },
      ])
      await expect(
        sql(`INSERT INTO "${schema}".jobs (queue, priority, body) VALUES ($1, 10, '\\x00')`, [queue]),
      ).rejects.toMatchObject({ code: '23514' })
      // Requeued, a row dead-lettered for its priority comes back in range instead of failing.
      expect(await broker.requeueDeadLetters(queue)).toBe(3)
      const priorities = await sql<{ priority: number }>(
        `SELECT priority FROM "${schema}".jobs WHERE queue = $1 ORDER BY priority`,
        [queue],
      )
      expect(priorities.map((r) => r.priority)).toEqual([0, 0, 3, 9, 9])
    } finally {
      await broker.close()
    }
  })
})
