import { readdirSync, readlinkSync } from 'node:fs'
import { createApp, type Delivery, defineTask, silentLogger } from '@errand/core'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { adapter, SqliteBroker } from '../src/index.js'
import { bytes, fileUrl, tempDir, text, uniqueQueue, until } from './helpers.js'

const tmp = tempDir('broker')
afterAll(() => tmp.remove())

/** File descriptors of this process open on `path` (Linux). */
function openHandles(path: string): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path
    } catch {
      return false
    }
  }).length
}

describe('sqlite broker', () => {
  it('createApp with sqlite:// URLs: broker and backend share one connection to the file', async () => {
    const url = fileUrl(tmp.dir)
    const path = url.slice('sqlite://'.length)
    const queue = uniqueQueue('app')
    const double = defineTask({
      name: 'sq.double',
      queue,
      input: z.number(),
      output: z.number(),
      handler: (n) => n * 2,
    })
    const app = createApp({
      broker: url,
      backend: url,
      adapters: [adapter],
      tasks: [double],
      logger: silentLogger,
    })
    try {
      await app.worker({ concurrency: 2, queues: [queue] }).start()
      expect(await (await app.send(double.s(21))).get({ timeoutMs: 5000 })).toBe(42)
      expect(openHandles(path)).toBe(1)
    } finally {
      await app.close()
    }
    expect(openHandles(path)).toBe(0)
  })

  it('a publish by another connection (another process) wakes an idle consumer within the poll interval', async () => {
    const url = fileUrl(tmp.dir)
    const broker = new SqliteBroker({ url, pollIntervalMs: 50 })
    await broker.connect()
    const queue = uniqueQueue('ext')
    const got: { at: number; d: Delivery }[] = []
    await broker.consume(queue, (d) => got.push({ at: Date.now(), d }), { prefetch: 4 })
    // Idle for a while: the poll has backed off to its longest pause.
    await new Promise((r) => setTimeout(r, 300))
    const other = new Database(url.slice('sqlite://'.length))
    const sent = Date.now()
    other
      .prepare('INSERT INTO errand_jobs (queue, priority, run_at, body) VALUES (?, 0, ?, ?)')
      .run(queue, sent, Buffer.from('from afar'))
    other.close()
    await until(() => got.length === 1, 2000)
    expect(text(got[0]!.d.body)).toBe('from afar')
    // Seen by polling data_version (5 ms while busy, at most pollIntervalMs idle), with room for a
    // loaded machine's timers; without that poll it would never be seen at all.
    expect(got[0]!.at - sent).toBeLessThan(1_000)
    await got[0]!.d.ack()
    await broker.close()
  })

  it('waits for another process holding the write lock without blocking the event loop', async () => {
    const url = fileUrl(tmp.dir)
    const broker = new SqliteBroker({ url })
    await broker.connect()
    const queue = uniqueQueue('lock')
    // What a free loop ticks in 300 ms on this machine, to compare with.
    let ticks = 0
    const idle = setInterval(() => ticks++, 5)
    await new Promise((r) => setTimeout(r, 300))
    clearInterval(idle)
    const baseline = ticks
    ticks = 0
    const other = new Database(url.slice('sqlite://'.length))
    other.exec('BEGIN IMMEDIATE')
    const ticker = setInterval(() => ticks++, 5)
    const publishing = broker.publish(queue, [{ body: bytes('after the lock') }])
    await new Promise((r) => setTimeout(r, 300))
    other.exec('COMMIT')
    await publishing
    clearInterval(ticker)
    other.close()
    // A loop blocked by the wait would tick once or twice in those 300 ms; a free one ticks about
    // as often as idle. The bound leaves room for a loaded machine (ticks fell to 0.6 of idle at a
    // load average of 30) while still telling the two apart.
    expect(ticks, `ticks while the lock was held (idle: ${baseline})`).toBeGreaterThanOrEqual(
      Math.max(5, baseline * 0.3),
    )
    expect((await broker.stats(queue)).ready).toBe(1)
    await broker.close()
  })

  it("checks arguments with core's kit: ERR_INVALID_OPTION naming queue, prefetch, leaseMs, limit, ids", async () => {
    const broker = new SqliteBroker({ url: 'sqlite::memory:' })
    const invalid = (option: string) => expect.objectContaining({ code: 'ERR_INVALID_OPTION', option })
    await expect(broker.publish('', [{ body: bytes('x') }])).rejects.toEqual(invalid('queue'))
    await expect(broker.consume('q', () => {}, { prefetch: 0 })).rejects.toEqual(invalid('prefetch'))
    await expect(broker.consume('q', () => {}, { prefetch: 1, leaseMs: -1 })).rejects.toEqual(
      invalid('leaseMs'),
    )
    await expect(broker.listDeadLetters('q', { limit: 0 })).rejects.toEqual(invalid('limit'))
    await expect(broker.purgeDeadLetters('q', [''])).rejects.toEqual(invalid('ids'))
    await broker.close()
  })

  it('gives up with ERR_CONNECTION naming the file after busyTimeoutMs', async () => {
    const url = fileUrl(tmp.dir)
    const broker = new SqliteBroker({ url, busyTimeoutMs: 200 })
    await broker.connect()
    const other = new Database(url.slice('sqlite://'.length))
    other.exec('BEGIN IMMEDIATE')
    try {
      const err = await broker.publish(uniqueQueue('lock'), [{ body: bytes('x') }]).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'ERR_CONNECTION' })
      expect(String((err as Error).message)).toContain(url.slice('sqlite://'.length))
    } finally {
      other.exec('ROLLBACK')
      other.close()
      await broker.close()
    }
  })

  it('concurrent publishes share a transaction and each is still all or nothing', async () => {
    const url = fileUrl(tmp.dir)
    const broker = new SqliteBroker({ url, durability: 'full', maxMessageBytes: 100 })
    await broker.connect()
    const [q1, q2] = [uniqueQueue('group'), uniqueQueue('group')]
    const calls = Array.from({ length: 200 }, (_, i) =>
      broker.publish(i % 2 === 0 ? q1 : q2, [{ body: bytes(`a${i}`) }, { body: bytes(`b${i}`) }]),
    )
    // One call of the same turn is refused as a whole (a body over maxMessageBytes): the others land.
    const refused = broker.publish(q1, [{ body: bytes('ok') }, { body: new Uint8Array(101) }])
    await expect(refused).rejects.toMatchObject({ code: 'ERR_PAYLOAD_TOO_LARGE' })
    await Promise.all(calls)
    expect((await broker.stats(q1)).ready).toBe(200)
    expect((await broker.stats(q2)).ready).toBe(200)
    await broker.close()
  })

  it('maintain() gives the pages of a drained backlog back: the file returns to its starting size', async () => {
    const url = fileUrl(tmp.dir)
    const broker = new SqliteBroker({ url })
    await broker.connect()
    await broker.maintain()
    const start = await broker.size()
    const queue = uniqueQueue('maint')
    const body = new Uint8Array(1000).fill(7)
    for (let i = 0; i < 10; i++)
      await broker.publish(
        queue,
        Array.from({ length: 1000 }, () => ({ body })),
      )
    const full = await broker.size()
    expect(full.file + full.wal).toBeGreaterThan(start.file + 9 * 1024 * 1024)
    let n = 0
    await broker.consume(
      queue,
      (d) => {
        n++
        void d.ack()
      },
      { prefetch: 200 },
    )
    await until(() => n === 10_000, 20_000)
    await until(async () => (await broker.stats(queue)).inFlight === 0)
    const { after } = await broker.maintain()
    expect(after.file).toBeLessThanOrEqual(start.file + 16 * 1024)
    expect(after.wal).toBe(0)
    expect(after.free).toBe(0)
    // VACUUM rewrites the file: no larger than after the incremental step.
    const vacuumed = await broker.maintain({ full: true })
    expect(vacuumed.after.file).toBeLessThanOrEqual(after.file)
    await broker.close()
  })

  it('settling after close rejects with ERR_CLOSED, and close gave the delivery back at once', async () => {
    const url = fileUrl(tmp.dir)
    const a = new SqliteBroker({ url, leaseMs: 60_000 })
    const b = new SqliteBroker({ url })
    await Promise.all([a.connect(), b.connect()])
    const queue = uniqueQueue('close')
    const gotA: Delivery[] = []
    const gotB: Delivery[] = []
    await a.consume(queue, (d) => gotA.push(d), { prefetch: 1 })
    await a.publish(queue, [{ body: bytes('x') }])
    await until(() => gotA.length === 1)
    await b.consume(queue, (d) => gotB.push(d), { prefetch: 1 })
    await a.close()
    await until(() => gotB.length === 1, 1000)
    expect(gotB[0]!.attempt).toBe(2)
    await expect(gotA[0]!.ack()).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    await gotB[0]!.ack()
    await b.close()
  })
})
