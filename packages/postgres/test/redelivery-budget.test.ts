import type { Delivery } from '@errand/core'
import { afterAll, describe, expect, it } from 'vitest'
import { PostgresBroker } from '../src/index.js'
import {
  bytes,
  collectingLogger,
  dropSchema,
  schemaUrl,
  sql,
  uniqueQueue,
  uniqueSchema,
  until,
} from './helpers.js'

const schema = uniqueSchema('budget')
afterAll(() => dropSchema(schema))

type Fetch = (queue: string, limit: number, leaseMs: number, retry: () => number) => Promise<unknown[]>

describe('postgres: a delivery that never reached core does not spend the redelivery budget', () => {
  it('rows whose fetch lands after cancel() go back with their counter unchanged', async () => {
    const broker = new PostgresBroker({ url: schemaUrl(schema), logger: collectingLogger() })
    try {
      await broker.connect()
      const q = uniqueQueue('budget')
      await broker.publish(q, [{ body: bytes('a') }, { body: bytes('b') }, { body: bytes('c') }])
      // Hold the first fetch's rows (already leased in the database) until the consumer is canceled.
      const host = (broker as unknown as { store: { fetch: Fetch } }).store
      const fetch = host.fetch.bind(host)
      let open!: () => void
      const gate = new Promise<void>((resolve) => {
        open = resolve
      })
      let leased = 0
      host.fetch = async (...args) => {
        const rows = await fetch(...args)
        leased += rows.length
        await gate
        return rows
      }
      const got: Delivery[] = []
      const consumer = await broker.consume(q, (d) => got.push(d), { prefetch: 3 })
      await until(() => leased === 3)
      const canceled = consumer.cancel()
      open()
      await canceled
      expect(got).toHaveLength(0)
      const rows = await sql<{ deliveries: number; locked: boolean }>(
        `SELECT deliveries, locked_until IS NOT NULL AS locked FROM "${schema}".jobs WHERE queue = $1`,
        [q],
      )
      expect(rows).toEqual([
        { deliveries: 0, locked: false },
        { deliveries: 0, locked: false },
        { deliveries: 0, locked: false },
      ])
      // The next consumer sees a first delivery, not a redelivery.
      host.fetch = fetch
      const again: Delivery[] = []
      const next = await broker.consume(q, (d) => again.push(d), { prefetch: 3 })
      await until(() => again.length === 3)
      expect(again.map((d) => d.attempt)).toEqual([1, 1, 1])
      await Promise.all(again.map((d) => d.ack()))
      await next.cancel()
    } finally {
      await broker.close()
    }
  })
})
