import { randomBytes } from 'node:crypto'
import { type App, createApp, defineTask, silentLogger, type TaskEvent } from '@errand/core'
import { RedisResultBackend } from '@errand/redis'
import { afterAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { BrokerPool, rabbitAvailable, uniqueQueue } from './helpers.js'

// Task events go through the result backend, not the broker: a RabbitMQ setup gets them from its
// Redis backend, seen here by an app that shares only the backend's URL with the worker's.
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const keyPrefix = `errand-amqp-ev-${randomBytes(4).toString('hex')}`
const available = await rabbitAvailable()
const pool = new BrokerPool()

describe.runIf(available)('task events with an AMQP broker and a Redis backend', () => {
  const apps: App[] = []
  afterAll(async () => {
    await Promise.all(apps.map((a) => a.close()))
    await pool.cleanup()
  }, 120_000)

  it('a watcher app on the backend alone sees the worker app’s lifecycle, in order', async () => {
    const queue = uniqueQueue('amqp-ev')
    const work = defineTask({
      name: 'amqp.ev',
      input: z.number(),
      queue,
      handler: (n: number, ctx) => {
        ctx.progress(n)
        return n
      },
    })
    const worker = createApp({
      broker: pool.broker(),
      backend: new RedisResultBackend({ url: REDIS_URL, keyPrefix }),
      tasks: [work],
      logger: silentLogger,
    })
    // The watcher's broker is the in-process one: only the backend connects it to the worker.
    const watcher = createApp({
      broker: `memory://${queue}`,
      backend: new RedisResultBackend({ url: REDIS_URL, keyPrefix }),
      logger: silentLogger,
    })
    apps.push(worker, watcher)
    const events = await watcher.events({ queues: [queue] })
    await worker.worker().start()
    const r = await worker.send(work.s(3))
    await r.get({ timeoutMs: 20_000 })
    const got: TaskEvent[] = []
    for await (const e of events) {
      if (e.type !== 'dropped' && e.id === r.id) got.push(e)
      if (e.type === 'succeeded') break
    }
    // One task's events come from two apps' batches (the sender's and the worker's): order them by
    // `at`, then lifecycle, as the guide says; stream order between two apps is not promised.
    const rank = ['sent', 'started', 'progress', 'succeeded']
    const ordered = [...got].sort((a, b) => a.at - b.at || rank.indexOf(a.type) - rank.indexOf(b.type))
    // The worker's own events keep their order; the sender's `sent` is stamped once the broker
    // confirmed the publish, which can be after the worker started the task.
    const workerOwn = ordered.filter((e) => e.type !== 'sent')
    expect(workerOwn.map((e) => e.type)).toEqual(['started', 'progress', 'succeeded'])
    expect(ordered.filter((e) => e.type === 'sent')).toHaveLength(1)
    expect(workerOwn[1]).toMatchObject({ value: 3, queue, task: 'amqp.ev' })
  }, 60_000)
})
