import { setTimeout as sleep } from 'node:timers/promises'
import { type App, createApp, type Delivery, defineTask, silentLogger } from '@errand/core'
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { PostgresBroker, PostgresResultBackend } from '../src/index.js'
import {
  bytes,
  DATABASE_URL,
  dropSchema,
  schemaUrl,
  sql,
  uniqueQueue,
  uniqueSchema,
  until,
} from './helpers.js'

const schema = uniqueSchema('gclose')
afterAll(() => dropSchema(schema))

/** Short, so that an ack lost at close would bring its task back within the test. */
const LEASE_MS = 1000

/**
 * A task whose handler finished before a graceful `app.close()` must never run again: its ack
 * (batched with the next fetch) has to reach the database before the connections close. Tasks
 * still waiting in the buffer, or aborted past the grace period, do come back, once.
 */
describe('postgres: app.close() while tasks run', () => {
  const cases = [
    { name: 'prefetch = concurrency', tasks: 40, concurrency: 10, prefetch: 10, closeAfterMs: 300 },
    { name: 'a buffer beyond the concurrency', tasks: 40, concurrency: 8, prefetch: 24, closeAfterMs: 250 },
    { name: 'close at the first deliveries', tasks: 30, concurrency: 10, prefetch: 10, closeAfterMs: 20 },
    {
      name: 'tasks past the grace period',
      tasks: 20,
      concurrency: 10,
      prefetch: 10,
      closeAfterMs: 100,
      graceMs: 120,
    },
  ]
  for (const c of cases) {
    it(`every task runs exactly once (${c.name})`, async () => {
      const queue = uniqueQueue('gclose')
      const runs = new Map<string, number>()
      const completed = new Map<string, number>()
      const work = defineTask({
        name: 'gclose.work',
        queue,
        input: z.object({ n: z.number().int() }),
        output: z.number().int(),
        handler: async ({ n }, ctx) => {
          runs.set(ctx.id, (runs.get(ctx.id) ?? 0) + 1)
          // ~200 ms of work, aborted only past the grace period.
          await sleep(170 + (n % 7) * 10, undefined, { signal: ctx.signal })
          completed.set(ctx.id, (completed.get(ctx.id) ?? 0) + 1)
          return n
        },
      })
      const sentinel = defineTask({
        name: 'gclose.sentinel',
        queue,
        input: z.null(),
        output: z.literal('done'),
        handler: () => 'done' as const,
      })
      const open = (): App =>
        createApp({
          broker: new PostgresBroker({ url: schemaUrl(schema), logger: silentLogger }),
          backend: new PostgresResultBackend({ url: schemaUrl(schema), logger: silentLogger }),
          tasks: [work, sentinel],
          logger: silentLogger,
        })
      const producer = open()
      const first = open()
      let second: App | undefined
      try {
        const handles = await producer.sendMany(Array.from({ length: c.tasks }, (_, n) => work.s({ n })))
        const ids = handles.map((h) => h.id)
        await first
          .worker({
            queues: [queue],
            concurrency: c.concurrency,
            prefetch: c.prefetch,
            leaseMs: LEASE_MS,
            shutdownGraceMs: c.graceMs ?? 5000,
          })
          .start()
        await until(() => runs.size > 0)
        await sleep(c.closeAfterMs)
        await first.close()
        const ranInFirst = new Map(runs)
        const completedInFirst = new Set(completed.keys())
        // A second worker on the same queue, until a sentinel sent after every lease of the first
        // app has run out (a task whose ack was lost would be back by then, ahead of it).
        second = open()
        await second.worker({ queues: [queue], concurrency: c.concurrency, leaseMs: LEASE_MS }).start()
        const done = await producer.send(sentinel.s(null), { countdownMs: LEASE_MS + 500 })
        expect(await done.get({ timeoutMs: 30_000 })).toBe('done')
        await until(() => ids.every((id) => runs.has(id)), 15_000)
        await second.close()
        second = undefined
        // Every task completed once; it started once, or twice if it was aborted past the
        // grace period (an abandoned run goes back to the queue).
        const wrong = ids.filter((id) => {
          const starts = runs.get(id) ?? 0
          const aborted = ranInFirst.has(id) && !completedInFirst.has(id) && starts === 2
          return completed.get(id) !== 1 || (starts !== 1 && !aborted)
        })
        expect(
          wrong.map(
            (id) =>
              `${id}: ${runs.get(id)} starts, ${completed.get(id) ?? 0} completions, ${completedInFirst.has(id) ? 'completed' : 'not completed'} before close`,
          ),
        ).toEqual([])
        if (c.graceMs === undefined) expect(ids.filter((id) => runs.get(id) !== 1)).toEqual([])
        for (const h of handles) expect(await h.get({ timeoutMs: 5000 })).toBeTypeOf('number')
      } finally {
        await second?.close()
        await first.close()
        await producer.close()
      }
    })
  }
})

describe('postgres: acks on their way when the broker closes', () => {
  const left = async (queue: string) =>
    (await sql<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".jobs WHERE queue = $1`, [queue]))[0]
      ?.n

  it('close() writes acks made just before it (batched, not yet sent)', async () => {
    const broker = new PostgresBroker({ url: schemaUrl(schema), logger: silentLogger })
    const queue = uniqueQueue('gclose-acks')
    await broker.connect()
    await broker.publish(
      queue,
      Array.from({ length: 30 }, (_, i) => ({ body: bytes(`m${i}`) })),
    )
    const got: Delivery[] = []
    await broker.consume(queue, (d) => got.push(d), { prefetch: 10 })
    await until(() => got.length === 10)
    // Same turn as close(): the acks sit in the batcher (with a fused fetch asked for).
    const acks = got.map((d) => d.ack())
    await broker.close()
    await Promise.all(acks)
    expect(await left(queue)).toBe(20)
  })

  it("a canceled consumer's last acks are written", async () => {
    const broker = new PostgresBroker({ url: schemaUrl(schema), logger: silentLogger })
    const queue = uniqueQueue('gclose-cancel')
    try {
      await broker.connect()
      await broker.publish(
        queue,
        Array.from({ length: 30 }, (_, i) => ({ body: bytes(`m${i}`) })),
      )
      const got: Delivery[] = []
      const consumer = await broker.consume(queue, (d) => got.push(d), { prefetch: 10 })
      await until(() => got.length === 10)
      await consumer.cancel()
      await Promise.all(got.map((d) => d.ack()))
      expect(await left(queue)).toBe(20)
    } finally {
      await broker.close()
    }
  })

  it('close() waits for an ack the server is slow to answer (within closeTimeoutMs)', async () => {
    const broker = new PostgresBroker({ url: schemaUrl(schema), logger: silentLogger, closeTimeoutMs: 5000 })
    const queue = uniqueQueue('gclose-slow')
    const blocker = new pg.Client({ connectionString: DATABASE_URL })
    await blocker.connect()
    try {
      await broker.connect()
      await broker.publish(queue, [{ body: bytes('slow') }])
      const got: Delivery[] = []
      await broker.consume(queue, (d) => got.push(d), { prefetch: 1 })
      await until(() => got.length === 1)
      // Hold the row's lock for 1.5 s: the ack's DELETE waits for it, as on a loaded server.
      await blocker.query('BEGIN')
      await blocker.query(`SELECT 1 FROM "${schema}".jobs WHERE queue = $1 FOR UPDATE`, [queue])
      const ack = (got[0] as Delivery).ack()
      const closed = broker.close()
      await sleep(1500)
      await blocker.query('COMMIT')
      await Promise.all([ack, closed])
      expect(await left(queue)).toBe(0)
    } finally {
      await blocker.end()
      await broker.close()
    }
  })
})
