// maintain() is measured alone: VACUUM can only return the space of rows that no open snapshot may
// still see, and in the main project other test files' transactions on the same server hold such
// snapshots at random moments (the table then stayed at 15 MB). The fault project runs one file
// at a time, after everything else.
import type { Delivery } from '@errand/core'
import { describe, expect, it } from 'vitest'
import { PostgresBroker } from '../src/index.js'
import {
  bytes,
  collectingLogger,
  dropSchema,
  schemaUrl,
  uniqueQueue,
  uniqueSchema,
  until,
} from './helpers.js'

describe('postgres broker maintenance (alone on the server)', () => {
  it('maintain() shrinks the table and its indexes back after a large backlog drained', async () => {
    const own = uniqueSchema('maint')
    const b = new PostgresBroker({ url: schemaUrl(own), logger: collectingLogger(), vacuumAfterDeletes: 0 })
    try {
      await b.connect()
      const empty = await b.tableSize()
      // Long queue names make a large index out of few rows.
      const q = `${'q'.repeat(180)}-${uniqueQueue()}`
      const body = bytes('x')
      for (let i = 0; i < 40; i++)
        await b.publish(
          q,
          Array.from({ length: 1000 }, () => ({ body })),
        )
      const full = await b.tableSize()
      expect(full.indexes).toBeGreaterThan(8 * 1024 * 1024)
      expect(await b.purge(q)).toBe(40_000)
      const { before, after, reindexed } = await b.maintain()
      expect(before.indexes).toBe(full.indexes)
      expect(reindexed).toContain(`${own}.jobs_fetch`)
      expect(after.table).toBeLessThanOrEqual(empty.table + 64 * 1024)
      // The large index is rebuilt; a small one (the primary key here) is left as it is.
      expect(after.indexes).toBeLessThan(full.indexes / 8)
      // Still works on the rebuilt indexes.
      const got: Delivery[] = []
      await b.consume(q, (d) => got.push(d), { prefetch: 1 })
      await b.publish(q, [{ body: bytes('after') }])
      await until(() => got.length === 1)
      await got[0]!.ack()
    } finally {
      await b.close()
      await dropSchema(own)
    }
  })
})
