import { createApp, defineTask, silentLogger } from '@errand/core'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { SqliteBroker, SqliteResultBackend } from '../src/index.js'
import { fileUrl, tempDir, uniqueQueue } from './helpers.js'
import { spawnChild } from './processes.js'

const tmp = tempDir('kill')
afterAll(() => tmp.remove())

describe('sqlite: processes killed with SIGKILL', () => {
  it('a worker killed mid-task: its tasks come back after the lease and complete, nothing lost', async () => {
    const url = fileUrl(tmp.dir)
    const queue = uniqueQueue('kill-worker')
    const leaseMs = 2000
    const attempts = new Map<number, number>()
    const slow = defineTask({
      name: 'fault.slow',
      queue,
      input: z.object({ n: z.number() }),
      handler: ({ n }, ctx) => {
        attempts.set(n, ctx.attempt)
        return n * 2
      },
    })
    const app = createApp({
      broker: new SqliteBroker({ url }),
      backend: new SqliteResultBackend({ url }),
      tasks: [slow],
      logger: silentLogger,
    })
    try {
      const results = await app.sendMany([1, 2, 3].map((n) => slow.s({ n })))
      const child = spawnChild('worker', { DB_URL: url, QUEUE: queue, LEASE_MS: String(leaseMs) })
      for (const n of [1, 2, 3]) await child.next((m) => m.started === n, 120_000)
      const broker = (await app.connect()).broker
      expect(await broker.stats(queue)).toMatchObject({ ready: 0, inFlight: 3 })
      child.process.kill('SIGKILL')
      expect(await child.exited).toBe('SIGKILL')
      const killedAt = Date.now()
      await app.worker({ concurrency: 3, queues: [queue] }).start()
      expect(await Promise.all(results.map((r) => r.get({ timeoutMs: 10_000 })))).toEqual([2, 4, 6])
      const elapsed = Date.now() - killedAt
      // The child extended its leases every leaseMs / 3: they ran out about 2/3 to 1 lease after
      // it died (a quarter of it at the least, allowing for a starved child's late extensions),
      // not at once, and not much later.
      expect(elapsed).toBeGreaterThanOrEqual(leaseMs / 4)
      expect(elapsed).toBeLessThan(leaseMs + 3000)
      expect([...attempts.values()]).toEqual([2, 2, 2])
      const stats = await broker.stats(queue)
      expect(stats).toMatchObject({ ready: 0, delayed: 0, dead: 0 })
    } finally {
      await app.close()
    }
  }, 300_000)

  it('a producer killed during sendMany of 10,000: every batch is all there or not at all', async () => {
    const batch = 10_000
    for (let round = 0; round < 3; round++) {
      const url = fileUrl(tmp.dir)
      const queue = uniqueQueue('kill-producer')
      const child = spawnChild('producer', { DB_URL: url, QUEUE: queue, BATCH: String(batch) })
      await child.next((m) => m.done === 0, 120_000)
      // Kill while a later batch is being written: a few ms into it, varied per round.
      await child.next((m) => m.start === 2)
      await new Promise((r) => setTimeout(r, round * 7))
      child.process.kill('SIGKILL')
      expect(await child.exited).toBe('SIGKILL')
      const done = child.messages.filter((m) => typeof m.done === 'number').length
      const db = new Database(url.slice('sqlite://'.length))
      try {
        expect(db.pragma('integrity_check', { simple: true })).toBe('ok')
        const rows = db.prepare('SELECT count(*) AS n FROM errand_jobs WHERE queue = ?').get(queue) as {
          n: number
        }
        expect(rows.n % batch, `${rows.n} rows: a batch was half written`).toBe(0)
        // Every batch the child saw committed is there (at most one more, whose commit the kill
        // interrupted after the data reached the file).
        expect(rows.n / batch).toBeGreaterThanOrEqual(done)
        expect(rows.n / batch).toBeLessThanOrEqual(done + 1)
      } finally {
        db.close()
      }
      // The file still works as a queue.
      const broker = new SqliteBroker({ url })
      await broker.connect()
      expect((await broker.stats(queue)).ready % batch).toBe(0)
      await broker.close()
    }
  }, 600_000)
})
