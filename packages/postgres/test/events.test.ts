import {
  type App,
  createApp,
  defineTask,
  type EventStreamItem,
  silentLogger,
  type TaskEvent,
} from '@errand/core'
import { afterAll, afterEach, expect, it } from 'vitest'
import { z } from 'zod'
import { PostgresBroker, PostgresResultBackend } from '../src/index.js'
import { dropSchema, schemaUrl, sql, uniqueQueue, uniqueSchema } from './helpers.js'

const schema = uniqueSchema('events')
const url = schemaUrl(schema)
const apps: App[] = []
const backends: PostgresResultBackend[] = []
afterEach(async () => {
  await Promise.all([...apps.splice(0).map((a) => a.close()), ...backends.splice(0).map((b) => b.close())])
})
afterAll(() => dropSchema(schema))

const work = (queue: string) =>
  defineTask({
    name: 'ev.work',
    input: z.number(),
    queue,
    handler: async (n: number, ctx) => {
      ctx.progress(n / 2)
      ctx.log.warn('halfway')
      return n * 2
    },
  })

function app(queue: string): App {
  const a = createApp({
    broker: new PostgresBroker({ url }),
    backend: new PostgresResultBackend({ url }),
    tasks: [work(queue)],
    logger: silentLogger,
  })
  apps.push(a)
  return a
}

async function collect(
  stream: AsyncIterable<EventStreamItem>,
  done: (events: TaskEvent[]) => boolean,
): Promise<TaskEvent[]> {
  const events: TaskEvent[] = []
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out; got ${JSON.stringify(events.map((e) => e.type))}`)),
      10_000,
    )
  })
  const reading = (async () => {
    for await (const item of stream) {
      if (item.type !== 'dropped') events.push(item)
      if (done(events)) return
    }
  })()
  try {
    await Promise.race([reading, timeout])
  } finally {
    clearTimeout(timer)
  }
  return events
}

it('a subscriber app sees a producer app’s sends and a worker app’s lifecycle (NOTIFY), in order', async () => {
  const q = uniqueQueue('ev')
  const watcher = app(q)
  const events = await watcher.events({ queues: [q] })
  const producer = app(q)
  await app(q).worker().start()
  const sent = await producer.sendMany([work(q).s(1), work(q).s(2)])
  for (const r of sent) await r.get({ timeoutMs: 10_000 })
  const got = await collect(events, (es) => es.filter((e) => e.type === 'succeeded').length >= 2)
  for (const r of sent) {
    expect(got.filter((e) => e.id === r.id).map((e) => e.type)).toEqual([
      'sent',
      'started',
      'progress',
      'succeeded',
    ])
  }
  expect(await producer.result(sent[1]?.id as string).progress()).toBe(1)
  expect((await producer.result(sent[1]?.id as string).logs()).map((l) => [l.level, l.message])).toEqual([
    ['warn', 'halfway'],
  ])
  // A late reader gets the queue's history from the table, oldest first.
  const history = await app(q).recentEvents(q, { limit: 100 })
  expect(history.filter((e) => e.id === sent[0]?.id).map((e) => e.type)).toEqual([
    'sent',
    'started',
    'progress',
    'succeeded',
  ])
})

it('an event too long for a NOTIFY payload is announced by id and still delivered', async () => {
  const writer = new PostgresResultBackend({ url })
  const reader = new PostgresResultBackend({ url })
  backends.push(writer, reader)
  await Promise.all([writer.connect(), reader.connect()])
  const q = uniqueQueue('ev')
  const got: TaskEvent[] = []
  let arrived!: () => void
  const both = new Promise<void>((resolve) => {
    arrived = resolve
  })
  const sub = await reader.subscribeEvents({ queues: [q] }, (e) => {
    got.push(e)
    if (got.length === 2) arrived()
  })
  const base = { id: 't1', task: 'x', queue: q, attempt: 1, at: 1 }
  await writer.publishEvents([
    { ...base, type: 'progress', value: 'y'.repeat(9000) },
    { ...base, type: 'succeeded', durationMs: 1 },
  ])
  await both
  await sub.close()
  expect(got.map((e) => e.type).sort()).toEqual(['progress', 'succeeded'])
  expect((got.find((e) => e.type === 'progress') as { value: string }).value).toHaveLength(9000)
})

it('writers trim a queue back to the retention in batches', async () => {
  const backend = new PostgresResultBackend({ url, eventRetention: 50 })
  backends.push(backend)
  await backend.connect()
  const q = uniqueQueue('ev')
  for (let i = 0; i < 20; i++) {
    await backend.publishEvents(
      Array.from({ length: 10 }, (_, k) => ({
        type: 'started' as const,
        id: `t${i * 10 + k}`,
        task: 'x',
        queue: q,
        attempt: 1,
        at: i,
      })),
    )
  }
  const [row] = await sql<{ n: number }>(
    `SELECT count(*)::int AS n FROM "${schema}".events WHERE queue = $1`,
    [q],
  )
  // Trimmed to 50 each time 10 more arrived (a tenth of the retention, at least 10).
  expect(row?.n).toBeLessThanOrEqual(60)
  expect(row?.n).toBeGreaterThanOrEqual(50)
  const recent = await backend.recentEvents(q, 1000)
  expect(recent[recent.length - 1]?.id).toBe('t199')
})
