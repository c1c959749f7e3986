import type { Delivery } from '@errand/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PostgresBroker } from '../src/index.js'
import { bytes, dropSchema, schemaUrl, text, uniqueQueue, uniqueSchema, until } from './helpers.js'

const schema = uniqueSchema('b')
const brokers: PostgresBroker[] = []
async function open(
  options: Partial<ConstructorParameters<typeof PostgresBroker>[0]> = {},
): Promise<PostgresBroker> {
  const b = new PostgresBroker({ url: schemaUrl(schema), ...options })
  brokers.push(b)
  await b.connect()
  return b
}

beforeAll(async () => {
  await open()
})
afterAll(async () => {
  await Promise.all(brokers.map((b) => b.close()))
  await dropSchema(schema)
})

describe('postgres broker basics', () => {
  it('publishes and consumes in order, acks delete', async () => {
    const b = await open()
    const q = uniqueQueue()
    await b.publish(q, [{ body: bytes('a') }, { body: bytes('b') }])
    await b.publish(q, [{ body: bytes('c') }])
    const got: Delivery[] = []
    const c = await b.consume(q, (d) => got.push(d), { prefetch: 10 })
    await until(() => got.length === 3)
    expect(got.map((d) => text(d.body))).toEqual(['a', 'b', 'c'])
    expect(got.map((d) => d.attempt)).toEqual([1, 1, 1])
    expect(await b.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 3, dead: 0 })
    await Promise.all(got.map((d) => d.ack()))
    expect(await b.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 })
    await c.cancel()
  })
})
