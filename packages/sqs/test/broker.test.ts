import type { Delivery } from '@errand/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SqsBroker } from '../src/index.js'
import { type SqsTestEndpoint, startSqs, testOptions, uniqueQueue } from './fauxqs.js'

const enc = new TextEncoder()

let sqs: SqsTestEndpoint
beforeAll(async () => {
  sqs = await startSqs()
})
afterAll(async () => {
  await sqs?.stop()
})

async function withBroker<T>(fn: (b: SqsBroker) => Promise<T>, extra = {}): Promise<T> {
  const broker = new SqsBroker(testOptions(sqs.endpoint, extra))
  await broker.connect()
  try {
    return await fn(broker)
  } finally {
    await broker.close()
  }
}

function collect(): { got: Delivery[]; next: (n?: number, timeoutMs?: number) => Promise<Delivery[]> } {
  const got: Delivery[] = []
  const waiters: (() => void)[] = []
  return {
    got,
    onDelivery: (d: Delivery) => {
      got.push(d)
      for (const w of waiters.splice(0)) w()
    },
    async next(n = 1, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs
      while (got.length < n) {
        if (Date.now() > deadline) throw new Error(`timed out at ${got.length}/${n}`)
        await new Promise<void>((r) => {
          waiters.push(r)
          setTimeout(r, 100)
        })
      }
      return got.splice(0, n)
    },
  } as never
}

describe('sqs broker', () => {
  it('publishes, delivers and acks, text and binary bodies byte-exact', async () => {
    await withBroker(async (broker) => {
      const q = uniqueQueue()
      const bodies = [
        enc.encode('{"v":1}'),
        new Uint8Array([0, 255, 1, 2, 0xc3]),
        new Uint8Array(0),
        enc.encode('héllo 😀'),
      ]
      await broker.publish(
        q,
        bodies.map((body) => ({ body })),
      )
      const c = collect() as unknown as {
        onDelivery: (d: Delivery) => void
        next: (n: number) => Promise<Delivery[]>
      }
      const consumer = await broker.consume(q, c.onDelivery, { prefetch: 10 })
      const ds = await c.next(4)
      const seen = ds.map((d) => Buffer.from(d.body).toString('hex')).sort()
      expect(seen).toEqual(bodies.map((b) => Buffer.from(b).toString('hex')).sort())
      for (const d of ds) expect(d.attempt).toBe(1)
      await Promise.all(ds.map((d) => d.ack()))
      await consumer.cancel()
      const stats = await broker.stats(q)
      expect(stats).toMatchObject({ ready: 0, inFlight: 0, dead: 0 })
    })
  })
})
