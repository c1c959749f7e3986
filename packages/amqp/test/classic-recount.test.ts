// Classic queues mark a returned message only with the `redelivered` flag (no count), so a
// message that kept coming back unsettled — a poison message killing every worker — read as
// attempt 2 forever and never reached core's redelivery budget. The consumer now re-counts such
// a message: it publishes a copy carrying the count and acks the original before handing it out.
import type { Delivery } from '@errand/core'
import { afterAll, describe, expect, it } from 'vitest'
import { BrokerPool, enc, rabbitAvailable, uniqueQueue } from './helpers.js'

const available = await rabbitAvailable()
const pool = new BrokerPool()

function nextDelivery(): { take: (d: Delivery) => void; next: Promise<Delivery> } {
  let take!: (d: Delivery) => void
  const next = new Promise<Delivery>((resolve) => {
    take = resolve
  })
  return { take, next }
}

describe.runIf(available)('amqp: attempts on classic queues', () => {
  afterAll(() => pool.cleanup(), 60_000)

  it('a message returned unsettled again and again counts every return, like quorum queues', async () => {
    const q = uniqueQueue('amqp-recount')
    const producer = pool.broker({ queueType: 'classic' })
    await producer.connect()
    await producer.publish(q, [{ body: enc('poison') }])
    const attempts: number[] = []
    let id: string | undefined
    // Five consumers in a row take the message and go away without settling it (as a worker
    // SIGKILLed mid-task would: its channel closes and RabbitMQ puts the message back).
    for (let i = 0; i < 5; i++) {
      const broker = pool.broker({ queueType: 'classic' })
      await broker.connect()
      const { take, next } = nextDelivery()
      await broker.consume(q, take, { prefetch: 1 })
      const d = await next
      attempts.push(d.attempt)
      id ??= d.messageId
      expect(d.messageId, 'the same message every time').toBe(id)
      await broker.close()
    }
    expect(attempts).toEqual([1, 2, 3, 4, 5])
    const last = pool.broker({ queueType: 'classic' })
    await last.connect()
    const { take, next } = nextDelivery()
    await last.consume(q, take, { prefetch: 1 })
    const d = await next
    expect(d.attempt).toBe(6)
    await d.ack()
    expect((await last.stats(q)).ready, 'no copy left behind by the re-count').toBe(0)
  }, 60_000)
})
