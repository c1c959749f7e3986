import { createApp, defineTask, silentLogger, type TaskEvent } from '@errand/core'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { SCHEMA_VERSION, SqliteBroker, SqliteResultBackend } from '../src/index.js'
import { MIGRATIONS } from '../src/migrations.js'
import { fileUrl, tempDir, uniqueQueue, until } from './helpers.js'
import { spawnChild } from './processes.js'

const tmp = tempDir('events')
afterAll(() => tmp.remove())

const pathOf = (url: string) => url.slice('sqlite://'.length)

function progress(queue: string, id: string, n: number): TaskEvent {
  return { type: 'progress', id, task: 'ev.t', queue, attempt: 1, at: Date.now(), value: { n } }
}

const ns = (events: readonly TaskEvent[]) => events.map((e) => (e as { value: { n: number } }).value.n)

describe('sqlite events', () => {
  it('a worker in another process: the test process sees its started, progress and succeeded events, in order', async () => {
    const url = fileUrl(tmp.dir)
    const queue = uniqueQueue('ev-proc')
    const step = defineTask({
      name: 'events.step',
      queue,
      input: z.object({ n: z.number() }),
      handler: ({ n }) => n * 2,
    })
    const app = createApp({
      broker: new SqliteBroker({ url }),
      backend: new SqliteResultBackend({ url, pollIntervalMs: 20 }),
      tasks: [step],
      logger: silentLogger,
    })
    const child = spawnChild('events', { DB_URL: url, QUEUE: queue })
    try {
      const stream = await app.events({ queues: [queue] })
      const seen: { event: TaskEvent; at: number }[] = []
      stream.on((event) => seen.push({ event, at: Date.now() }))
      const { pid } = await child.next((m) => m.ready === true, 120_000)
      const results = await app.sendMany([1, 2, 3].map((n) => step.s({ n })))
      expect(await Promise.all(results.map((r) => r.get({ timeoutMs: 30_000 })))).toEqual([2, 4, 6])
      const ids = results.map((r) => r.id)
      const done = () =>
        ids.every((id) => seen.some((s) => s.event.id === id && s.event.type === 'succeeded'))
      await until(done, 10_000)
      for (const id of ids) {
        const types = seen.filter((s) => s.event.id === id).map((s) => s.event.type)
        // `sent` comes from this process, the rest from the child: only the child's are ordered
        // relative to each other (events of one process keep their order).
        expect(
          types.filter((t) => t !== 'sent'),
          `events of ${id}`,
        ).toEqual(['started', 'progress', 'succeeded'])
        expect(
          types.filter((t) => t === 'sent'),
          `sent of ${id}`,
        ).toHaveLength(1)
      }
      expect(child.process.pid).toBe(pid)
      // The history holds the same events, read from the file.
      const recent = await app.recentEvents(queue, { limit: 100 })
      expect(
        recent
          .filter((e) => e.type === 'succeeded')
          .map((e) => e.id)
          .sort(),
      ).toEqual([...ids].sort())
      await stream.close()
      child.process.send('stop')
      expect(await child.exited).toBe(0)
    } finally {
      child.process.kill()
      await app.close()
    }
  }, 240_000)

  it('another connection’s rows between this process’s own: each delivered once, own at once, in order', async () => {
    const url = fileUrl(tmp.dir)
    const queue = uniqueQueue('ev-gap')
    const backend = new SqliteResultBackend({ url, pollIntervalMs: 50 })
    const got: TaskEvent[] = []
    const sub = await backend.subscribeEvents({ queues: [queue] }, (e) => got.push(e))
    const other = new Database(pathOf(url))
    const foreign = (n: number) =>
      other
        .prepare('INSERT INTO errand_events (queue, body) VALUES (?, ?)')
        .run(queue, JSON.stringify(progress(queue, 'foreign', n)))
    try {
      await backend.publishEvents([progress(queue, 'own', 0)])
      expect(ns(got), 'own events are delivered by the time publishEvents resolves').toEqual([0])
      // Rows from another connection, then own rows after them: the own ones arrive at once,
      // the others' through data_version, and none twice.
      foreign(100)
      foreign(101)
      await backend.publishEvents([progress(queue, 'own', 1), progress(queue, 'own', 2)])
      expect(ns(got.filter((e) => e.id === 'own'))).toEqual([0, 1, 2])
      await until(() => got.length === 5, 5000)
      foreign(102)
      await until(() => got.length === 6, 5000)
      await backend.publishEvents([progress(queue, 'own', 3)])
      // Give a stray duplicate the time to show up: one more poll round.
      foreign(103)
      await until(() => got.length === 8, 5000)
      expect(ns(got.filter((e) => e.id === 'own'))).toEqual([0, 1, 2, 3])
      expect(ns(got.filter((e) => e.id === 'foreign'))).toEqual([100, 101, 102, 103])
      expect(got).toHaveLength(8)
    } finally {
      other.close()
      await sub.close()
      await backend.close()
    }
  })

  // 20: the cut-off in one step, 2490 rows deleted in 13 transactions; 6000: the cut-off found
  // over two steps of the index walk (5000 entries each at most).
  for (const retention of [20, 6000]) {
    it(`writers trim a queue back to the retention (${retention}), whoever wrote the rows`, async () => {
      const url = fileUrl(tmp.dir)
      const queue = uniqueQueue('ev-trim')
      const every = Math.max(10, retention / 10)
      const backend = new SqliteResultBackend({ url, eventRetention: retention })
      await backend.connect()
      const other = new Database(pathOf(url))
      const count = () =>
        other.prepare('SELECT count(*) FROM errand_events WHERE queue = ?').pluck().get(queue)
      try {
        // Below a tenth of the retention (at least 10) since the last trim: nothing trimmed yet.
        await backend.publishEvents(Array.from({ length: every - 1 }, (_, n) => progress(queue, 'a', n)))
        expect(count()).toBe(every - 1)
        // Many rows from elsewhere (another process that does not trim), then one more own event.
        const foreign = retention + 2500
        const insert = other.prepare('INSERT INTO errand_events (queue, body) VALUES (?, ?)')
        other.transaction(() => {
          for (let n = 0; n < foreign; n++) insert.run(queue, JSON.stringify(progress(queue, 'b', n)))
        })()
        await backend.publishEvents([progress(queue, 'a', every - 1)])
        expect(count()).toBe(retention)
        const kept = await backend.recentEvents(queue, retention + 100)
        expect(kept).toHaveLength(retention)
        expect(kept[retention - 1]).toMatchObject({ id: 'a', value: { n: every - 1 } })
        expect(ns(kept.slice(0, retention - 1))).toEqual(
          Array.from({ length: retention - 1 }, (_, i) => foreign - retention + 1 + i),
        )
      } finally {
        other.close()
        await backend.close()
      }
    })
  }

  it('a large batch is written in slices of 200, the event loop running between them', async () => {
    const url = fileUrl(tmp.dir)
    const queue = uniqueQueue('ev-slices')
    const backend = new SqliteResultBackend({ url, eventRetention: 5000 })
    await backend.connect()
    let turns = 0
    let ticking = true
    const tick = () => {
      turns++
      if (ticking) setImmediate(tick)
    }
    try {
      setImmediate(tick)
      await backend.publishEvents(Array.from({ length: 2000 }, (_, n) => progress(queue, 's', n)))
      ticking = false
      // Ten transactions, with a turn of the loop between each two: one long write would let
      // the ticker run once or twice.
      expect(turns).toBeGreaterThanOrEqual(9)
      expect(ns(await backend.recentEvents(queue, 5000))).toEqual(Array.from({ length: 2000 }, (_, n) => n))
    } finally {
      ticking = false
      await backend.close()
    }
  })

  it('recentEvents pages through more than 1000 rows, oldest first', async () => {
    const url = fileUrl(tmp.dir)
    const queue = uniqueQueue('ev-page')
    const backend = new SqliteResultBackend({ url, eventRetention: 5000 })
    try {
      await backend.publishEvents(Array.from({ length: 2500 }, (_, n) => progress(queue, 'p', n)))
      expect(ns(await backend.recentEvents(queue, 2200))).toEqual(
        Array.from({ length: 2200 }, (_, i) => 300 + i),
      )
      expect(ns(await backend.recentEvents(queue, 1000))).toEqual(
        Array.from({ length: 1000 }, (_, i) => 1500 + i),
      )
    } finally {
      await backend.close()
    }
  })

  it('a file at schema version 1 gains the events table, its rows untouched', async () => {
    const url = fileUrl(tmp.dir)
    const queue = uniqueQueue('ev-migrate')
    const old = new Database(pathOf(url))
    old.pragma('journal_mode = WAL')
    old.exec(MIGRATIONS[0] as string)
    old.pragma('user_version = 1')
    old
      .prepare('INSERT INTO errand_jobs (queue, priority, run_at, body) VALUES (?, 0, 0, ?)')
      .run(queue, Buffer.from('kept'))
    old.close()
    const backend = new SqliteResultBackend({ url })
    const broker = new SqliteBroker({ url })
    try {
      await backend.publishEvents([progress(queue, 'm', 1)])
      expect(ns(await backend.recentEvents(queue, 10))).toEqual([1])
      expect((await broker.stats(queue)).ready).toBe(1)
      const check = new Database(pathOf(url), { readonly: true })
      expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION)
      check.close()
    } finally {
      await Promise.all([backend.close(), broker.close()])
    }
  })
})
