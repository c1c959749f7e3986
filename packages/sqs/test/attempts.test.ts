import type { Delivery } from '@errand/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { SqsDelivery } from '../src/delivery.js'
import { SqsBroker, type SqsBrokerOptions } from '../src/index.js'
import { type SqsTestEndpoint, startSqs, testOptions, uniqueQueue } from './fauxqs.js'

const enc = new TextEncoder()
const dec = new TextDecoder()

let sqs: SqsTestEndpoint
const brokers: SqsBroker[] = []
beforeAll(async () => {
  sqs = await startSqs()
})
afterAll(async () => {
  await Promise.allSettled(brokers.map((b) => b.close()))
  await sqs?.stop()
})

async function open(extra: SqsBrokerOptions = {}): Promise<SqsBroker> {
  const broker = new SqsBroker(testOptions(sqs.endpoint, extra))
  brokers.push(broker)
  await broker.connect()
  return broker
}

/** Deliveries in arrival order; `next()` resolves with the next one. */
function queueOf() {
  const got: Delivery[] = []
  const waiters: ((d: Delivery) => void)[] = []
  return {
    handler: (d: Delivery) => {
      const w = waiters.shift()
      if (w) w(d)
      else got.push(d)
    },
    next: (): Promise<Delivery> => {
      const d = got.shift()
      return d ? Promise.resolve(d) : new Promise((resolve) => waiters.push(resolve))
    },
  }
}

describe('sqs attempts: giving back a delivery that never started', () => {
  it('standard queue: giveBack() does not count the receive, nack() does', async () => {
    const broker = await open()
    const q = uniqueQueue('give')
    const inbox = queueOf()
    await broker.consume(q, inbox.handler, { prefetch: 1 })
    await broker.publish(q, [{ body: enc.encode('job') }])
    const first = (await inbox.next()) as SqsDelivery
    expect(first.attempt).toBe(1)
    await first.giveBack()
    const second = await inbox.next()
    expect(dec.decode(second.body)).toBe('job')
    expect(second.attempt).toBe(1)
    await second.nack()
    const third = (await inbox.next()) as SqsDelivery
    expect(third.attempt).toBe(2)
    // The count carried by a give-back survives: a started (nacked) receive still counts after it.
    await third.giveBack()
    const fourth = await inbox.next()
    expect(fourth.attempt).toBe(2)
    await fourth.ack()
    expect(await broker.stats(q)).toMatchObject({ ready: 0, inFlight: 0 })
  })

  it('FIFO queue: giveBack() keeps the message in its group and counts the receive (SQS cannot undo it)', async () => {
    const broker = await open({ fifo: true })
    const q = uniqueQueue('givefifo')
    const inbox = queueOf()
    await broker.consume(q, inbox.handler, { prefetch: 1 })
    await broker.publish(q, [{ body: enc.encode('a'), orderingKey: 'k' }])
    const first = (await inbox.next()) as SqsDelivery
    await first.giveBack()
    const second = await inbox.next()
    expect(dec.decode(second.body)).toBe('a')
    expect(second.attempt).toBe(2)
    await second.ack()
  })
})
