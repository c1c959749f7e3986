import { fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import {
  type App,
  createApp,
  defineTask,
  type EventStreamItem,
  silentLogger,
  type TaskEvent,
} from '@errand/core'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { RedisBroker, RedisResultBackend } from '../src/index.js'
import { deletePrefix, REDIS_URL, redisAvailable, uniquePrefix } from './helpers.js'

const available = await redisAvailable()
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
/** Runs the children on the workspace's TypeScript sources (test-support/README.md). */
const TS_HOOKS = fileURLToPath(new URL('../../../test-support/ts-hooks.mjs', import.meta.url))

/** Reads `stream` until `done` accepts what arrived; fails after 10 s listing what did. */
async function collect(
  stream: AsyncIterable<EventStreamItem>,
  done: (events: TaskEvent[]) => boolean,
): Promise<TaskEvent[]> {
  const events: TaskEvent[] = []
  const reading = (async () => {
    for await (const item of stream) {
      if (item.type !== 'dropped') events.push(item)
      if (done(events)) return
    }
  })()
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`events timed out; got ${JSON.stringify(events.map((e) => [e.type, e.id]))}`)),
      10_000,
    )
  })
  try {
    await Promise.race([reading, timeout])
  } finally {
    clearTimeout(timer)
  }
  return events
}

/** Lifecycle rank, to order events of one task stamped in the same millisecond. */
const RANK: Record<string, number> = {
  sent: 0,
  started: 1,
  progress: 2,
  succeeded: 3,
  failed: 3,
  'dead-lettered': 4,
}
/**
 * The types of one task's events in the order they happened. Events of one process arrive in
 * order, but a `sent` written by the producer's app can be read after the worker app's `started`
 * (each app gathers 10 ms of events per store call); the guide says to order by `at` then.
 */
const typesOf = (events: TaskEvent[], id: string) =>
  events
    .filter((e) => e.id === id)
    .sort((a, b) => a.at - b.at || (RANK[a.type] ?? 9) - (RANK[b.type] ?? 9))
    .map((e) => e.type)

describe.runIf(available)('task events on Redis across apps and processes', () => {
  const prefix = uniquePrefix('events')
  const apps: App[] = []
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()))
  })
  afterAll(() => deletePrefix(prefix))

  const queue = () => `ev-${randomBytes(4).toString('hex')}`
  const work = (q: string) =>
    defineTask({
      name: 'ev.work',
      input: z.number(),
      queue: q,
      handler: async (n: number, ctx) => {
        ctx.progress({ step: 1, of: 1 })
        ctx.log.info(`working on ${n}`)
        if (n < 0) throw new Error('negative')
        return n + 1
      },
    })
  const app = (q: string, broker: 'redis' | 'memory' = 'redis') => {
    const a = createApp({
      broker: broker === 'redis' ? new RedisBroker({ url: REDIS_URL, keyPrefix: prefix }) : `memory://${q}`,
      backend: new RedisResultBackend({ url: REDIS_URL, keyPrefix: prefix }),
      tasks: [work(q)],
      logger: silentLogger,
    })
    apps.push(a)
    return a
  }

  it('a subscriber app sees a producer app’s sends and a worker app’s lifecycle, in order; progress and logs on the handle', async () => {
    const q = queue()
    const watcher = app(q)
    const events = await watcher.events({ queues: [q] })
    const producer = app(q)
    await app(q).worker().start()
    const ok = await producer.send(work(q).s(1))
    const bad = await producer.send(work(q).s(-1))
    expect(await ok.get({ timeoutMs: 10_000 })).toBe(2)
    await expect(bad.get({ timeoutMs: 10_000 })).rejects.toMatchObject({ code: 'ERR_TASK_FAILED' })
    const got = await collect(
      events,
      (es) => es.filter((e) => e.type === 'succeeded' || e.type === 'dead-lettered').length >= 2,
    )
    expect(typesOf(got, ok.id)).toEqual(['sent', 'started', 'progress', 'succeeded'])
    expect(typesOf(got, bad.id)).toEqual(['sent', 'started', 'progress', 'failed', 'dead-lettered'])
    expect(got.find((e) => e.id === bad.id && e.type === 'failed')).toMatchObject({
      willRetry: false,
      error: { name: 'Error', message: 'negative' },
      queue: q,
      task: 'ev.work',
      root: bad.id,
    })
    expect(await producer.result(ok.id).progress()).toEqual({ step: 1, of: 1 })
    expect((await producer.result(bad.id).logs()).map((l) => l.message)).toEqual(['working on -1'])
    // A late reader gets the history of the queue from the capped stream.
    const history = await app(q).recentEvents(q, { limit: 100 })
    expect(typesOf(history, ok.id)).toEqual(['sent', 'started', 'progress', 'succeeded'])
  })

  it('events go through the backend whatever the broker (a memory broker, a Redis backend)', async () => {
    const q = queue()
    const watcher = app(q)
    const events = await watcher.events({ types: ['succeeded'], queues: [q] })
    const worker = app(q, 'memory')
    await worker.worker().start()
    const r = await worker.send(work(q).s(5))
    const [done] = await collect(events, (es) => es.length >= 1)
    expect(done).toMatchObject({ type: 'succeeded', id: r.id })
  })

  it('a worker in a child process: the parent sees its events live', async () => {
    const q = queue()
    const child = fork(fixture('events-worker.ts'), [], {
      execArgv: ['--conditions=source', '--import', TS_HOOKS],
      env: { ...process.env, REDIS_URL, PREFIX: prefix, QUEUE: q },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    })
    let output = ''
    child.stdout?.on('data', (c: Buffer) => (output += c.toString()))
    child.stderr?.on('data', (c: Buffer) => (output += c.toString()))
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
    try {
      await new Promise<void>((resolve, reject) => {
        child.once('message', () => resolve())
        child.once('close', () => reject(new Error(`worker exited before it was ready: ${output}`)))
      })
      const parent = app(q)
      const events = await parent.events({ queues: [q], types: ['started', 'progress', 'succeeded'] })
      const sent = await parent.sendMany([work(q).s(1), work(q).s(2), work(q).s(3)])
      const got = await collect(events, (es) => es.filter((e) => e.type === 'succeeded').length >= 3)
      for (const r of sent) expect(typesOf(got, r.id)).toEqual(['started', 'progress', 'succeeded'])
    } finally {
      child.kill('SIGTERM')
      expect(await exited).toBe(0)
    }
  }, 60_000)
})
