import pg from 'pg'
import { afterAll, describe, expect, it, onTestFinished } from 'vitest'
import { PostgresResultBackend } from '../src/index.js'
import { migrateSchema } from '../src/migrations.js'
import { DATABASE_URL, dropSchema, schemaUrl, sql, uniqueQueue, uniqueSchema } from './helpers.js'

// What the conformance suite cannot see: many processes (here: pools) at once, the rows left
// behind and their sweep, an older schema, and the PostgreSQL-specific argument limits.
const schema = uniqueSchema('flow')
const schemas = [schema]
// The server is shared with other test files running at once: few connections per instance.
async function open(
  options: { cleanupIntervalMs?: number; schema?: string; migrate?: boolean } = {},
): Promise<PostgresResultBackend> {
  const { schema: s = schema, ...rest } = options
  const b = new PostgresResultBackend({ url: schemaUrl(s), poolSize: 3, ...rest })
  onTestFinished(() => b.close())
  await b.connect()
  return b
}
afterAll(async () => {
  for (const s of schemas) await dropSchema(s)
})

const key = (tag = 'k') => uniqueQueue(tag)

describe('postgres flow control', () => {
  it('many instances racing on one key: exactly max starts and max slots', async () => {
    const instances = await Promise.all(Array.from({ length: 5 }, () => open()))
    const rate = key('rate')
    const waits = await Promise.all(
      Array.from({ length: 300 }, (_, i) => instances[i % instances.length]!.takeRate(rate, 7, 60_000)),
    )
    expect(waits.filter((w) => w === 0)).toHaveLength(7)
    for (const w of waits) expect(w === 0 || (w >= 1 && w <= 60_000)).toBe(true)
    const rows = await sql<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${schema}".flow_rate WHERE key = $1`,
      [rate],
    )
    expect(rows[0]!.n).toBe(7)

    const slot = key('slot')
    const held = await Promise.all(
      Array.from({ length: 120 }, (_, i) =>
        instances[i % instances.length]!.acquireSlot(slot, `h${i % 40}`, 5, 60_000),
      ),
    )
    const winners = new Set(held.flatMap((h, i) => (h ? [`h${i % 40}`] : [])))
    expect(winners.size).toBe(5)
    const slots = await sql<{ holder: string }>(`SELECT holder FROM "${schema}".flow_slot WHERE key = $1`, [
      slot,
    ])
    expect(new Set(slots.map((r) => r.holder))).toEqual(winners)
  })

  it('takeRate: the wait is until enough starts leave the window, also when max went down', async () => {
    const b = await open()
    const k = key('rate')
    for (let i = 0; i < 4; i++) expect(await b.takeRate(k, 4, 2_000)).toBe(0)
    const full = await b.takeRate(k, 4, 2_000)
    expect(full).toBeGreaterThan(1_000)
    expect(full).toBeLessThanOrEqual(2_000)
    // Down to 2: two of the four must leave, so the wait is no shorter than for the oldest.
    expect(await b.takeRate(k, 2, 2_000)).toBeGreaterThanOrEqual(full - 50)
    // A shorter window forgets (and deletes) the old starts.
    await sql('SELECT pg_sleep(0.05)')
    expect(await b.takeRate(k, 1, 20)).toBe(0)
    const rows = await sql<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${schema}".flow_rate WHERE key = $1`,
      [k],
    )
    expect(rows[0]!.n).toBe(1)
    // Fractional and very long windows are fine.
    expect(await b.takeRate(key('rate'), 1, 0.5)).toBe(0)
    const long = key('rate')
    expect(await b.takeRate(long, 1, Number.MAX_SAFE_INTEGER)).toBe(0)
    expect(await b.takeRate(long, 1, Number.MAX_SAFE_INTEGER)).toBeGreaterThan(1e15)
  })

  it('cleanup deletes the rate and slot rows of keys nobody uses any more', async () => {
    const b = await open({ cleanupIntervalMs: 0 })
    const rate = key('gone')
    const slot = key('gone')
    await b.takeRate(rate, 3, 1)
    await b.takeRate(rate, 3, 1)
    await b.acquireSlot(slot, 'h', 1, 1)
    const live = key('live')
    await b.acquireSlot(live, 'h', 1, 60_000)
    await sql('SELECT pg_sleep(0.01)')
    const removed = await b.cleanup()
    expect(removed.rates).toBeGreaterThanOrEqual(2)
    expect(removed.slots).toBeGreaterThanOrEqual(1)
    const left = await sql<{ rates: number; slots: number; live: number }>(
      `SELECT (SELECT count(*) FROM "${schema}".flow_rate WHERE key = $1)::int AS rates,
        (SELECT count(*) FROM "${schema}".flow_slot WHERE key = $2)::int AS slots,
        (SELECT count(*) FROM "${schema}".flow_slot WHERE key = $3)::int AS live`,
      [rate, slot, live],
    )
    expect(left[0]).toEqual({ rates: 0, slots: 0, live: 1 })
  })

  it('the background sweep runs after flow writes too', async () => {
    const b = await open({ cleanupIntervalMs: 1 })
    const slot = key('bg')
    await b.acquireSlot(slot, 'h', 1, 1)
    await sql('SELECT pg_sleep(0.01)')
    const deadline = Date.now() + 5000
    for (;;) {
      await b.takeRate(key('bg'), 1, 1)
      const rows = await sql(`SELECT 1 FROM "${schema}".flow_slot WHERE key = $1`, [slot])
      if (rows.length === 0) break
      if (Date.now() > deadline) throw new Error('expired slot not swept')
      await new Promise((res) => setTimeout(res, 20))
    }
  })

  it('pausedQueues sorts as JavaScript does, whatever the collation', async () => {
    const b = await open()
    const base = key('p')
    const names = ['B', 'a', 'é', '\u{1F600}', '\uFF01', '_', 'Z'].map((n) => `${base}-${n}`)
    try {
      for (const n of names) await b.setPaused(n, true)
      const got = (await b.pausedQueues()).filter((q) => q.startsWith(base))
      expect(got).toEqual([...names].sort())
    } finally {
      for (const n of names) await b.setPaused(n, false)
    }
  })

  it('refuses what PostgreSQL cannot store, naming the argument', async () => {
    const b = await open()
    await expect(b.takeRate('a\u0000b', 1, 1000)).rejects.toThrow(/key contains a NUL/)
    await expect(b.acquireSlot('k', 'h\u0000', 1, 1000)).rejects.toThrow(/holder contains a NUL/)
    await expect(b.putValue('k', 'v\u0000', 1000)).rejects.toThrow(/value contains a NUL/)
    await expect(b.setPaused('q\u0000', true)).rejects.toThrow(/queue contains a NUL/)
    await expect(b.acquireSlot('k', 'h'.repeat(513), 1, 1000)).rejects.toThrow(/holder must be/)
    await expect(b.takeRate('k', 1, Number.POSITIVE_INFINITY)).rejects.toThrow(/perMs/)
    await expect(b.takeRate('k', 1.5, 1000)).rejects.toThrow(/max/)
    await expect(b.acquireSlot('k', 'h', 1, 0)).rejects.toThrow(/leaseMs/)
    await expect(b.putValue('k', 'v', -1)).rejects.toThrow(/ttlMs/)
    await expect(b.setPaused('q', 'yes' as unknown as boolean)).rejects.toThrow(/paused/)
    // The longest key and holder in three-byte characters: over a B-tree entry together.
    const wide = '€'.repeat(512)
    await expect(b.acquireSlot(wide, wide, 1, 1000)).rejects.toThrow(/key and holder take 3072 bytes/)
    expect(await b.acquireSlot(wide, 'h'.repeat(512), 1, 1000)).toBe(true)
    expect(await b.takeRate(wide, 1, 1000)).toBe(0)
  })

  it('refuses to run outside read committed (a snapshot older than the lock could over-admit)', async () => {
    const pool = new pg.Pool({
      connectionString: DATABASE_URL,
      max: 2,
      options: '-c default_transaction_isolation=repeatable\\ read',
    })
    const b = new PostgresResultBackend({ pool, schema })
    try {
      await b.connect()
      await expect(b.takeRate(key('rr'), 1, 1000)).rejects.toThrow(/read committed/)
      await expect(b.acquireSlot(key('rr'), 'h', 1, 1000)).rejects.toThrow(/read committed/)
    } finally {
      await b.close()
      await pool.end()
    }
  })

  it('an older schema upgrades to flow control; not migrated, cleanup still works', async () => {
    const old = uniqueSchema('flowold')
    schemas.push(old)
    const client = new pg.Client({ connectionString: DATABASE_URL })
    await client.connect()
    try {
      await migrateSchema(client as never, old, 6)
    } finally {
      await client.end()
    }
    const stale = await open({ schema: old, migrate: false, cleanupIntervalMs: 0 })
    expect(await stale.cleanup()).toMatchObject({ rates: 0, slots: 0 })
    await expect(stale.takeRate(key('old'), 1, 1000)).rejects.toThrow(/does not exist/)
    expect(await stale.migrate()).toContain(7)
    expect(await stale.takeRate(key('old'), 1, 1000)).toBe(0)
    expect(await stale.acquireSlot(key('old'), 'h', 1, 1000)).toBe(true)
  })
})
