import { GetQueueAttributesCommand, GetQueueUrlCommand, SendMessageCommand } from '@aws-sdk/client-sqs'
import type { Delivery } from '@errand/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SQS_MESSAGE_ATTRIBUTES as ATTR, SqsBroker, type SqsBrokerOptions } from '../src/index.js'
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

/** Collects deliveries; `take(n)` waits for the next n. */
function inbox() {
  const got: { d: Delivery; at: number }[] = []
  let cursor = 0
  return {
    handler: (d: Delivery) => {
      got.push({ d, at: Date.now() })
    },
    get count() {
      return got.length
    },
    async take(n = 1, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs
      while (got.length < cursor + n) {
        if (Date.now() > deadline) throw new Error(`timed out at ${got.length - cursor}/${n} deliveries`)
        await new Promise((r) => setTimeout(r, 20))
      }
      const out = got.slice(cursor, cursor + n)
      cursor += n
      return out
    },
  }
}

async function queueUrl(broker: SqsBroker, name: string): Promise<string> {
  return (await broker.client.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl!
}

describe('sqs broker: store-specific behaviour', () => {
  it('bodies travel byte-exact: text as the SQS body, other bytes in a binary attribute', async () => {
    const broker = await open()
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
    const box = inbox()
    await broker.consume(q, box.handler, { prefetch: 10 })
    const got = await box.take(4)
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
    expect(got.map(({ d }) => hex(d.body)).sort()).toEqual(bodies.map(hex).sort())
    for (const { d } of got) await d.ack()
  })

  it('refuses an oversized body naming its size and the limit, and priorities without a mapping', async () => {
    const broker = await open()
    const q = uniqueQueue()
    await expect(broker.publish(q, [{ body: new Uint8Array(262_145) }])).rejects.toMatchObject({
      code: 'ERR_PAYLOAD_TOO_LARGE',
      message: expect.stringMatching(/262145 bytes.*262144 bytes/),
    })
    await expect(broker.publish(q, [{ body: enc.encode('x'), priority: 1 }])).rejects.toMatchObject({
      code: 'ERR_NOT_SUPPORTED',
    })
    expect(broker.capabilities).toMatchObject({
      maxPriority: 0,
      maxDelayMs: 900_000,
      leases: true,
      maxBatchSize: 10,
    })
  })

  it('batches: 100 messages cost 10 sends, about 10 receives and 10 deletes', async () => {
    const broker = await open({ batchWindowMs: 20 })
    const q = uniqueQueue()
    await broker.stats(q) // create the queues first: creation calls are not what is counted
    const before = new Map(broker.calls)
    const delta = (name: string) => (broker.calls.get(name) ?? 0) - (before.get(name) ?? 0)
    await broker.publish(
      q,
      Array.from({ length: 100 }, (_, i) => ({ body: enc.encode(String(i)) })),
    )
    expect(delta('SendMessageBatch')).toBe(10)
    const box = inbox()
    await broker.consume(q, box.handler, { prefetch: 100 })
    const got = await box.take(100)
    await Promise.all(got.map(({ d }) => d.ack()))
    expect(delta('DeleteMessageBatch')).toBeLessThanOrEqual(15)
    expect(delta('ReceiveMessage')).toBeLessThanOrEqual(30)
  })

  it('creates the dead-letter queue with a redrive policy on the queue', async () => {
    const broker = await open()
    const q = uniqueQueue()
    await broker.stats(q)
    const out = await broker.client.send(
      new GetQueueAttributesCommand({
        QueueUrl: await queueUrl(broker, q),
        AttributeNames: ['RedrivePolicy'],
      }),
    )
    const policy = JSON.parse(out.Attributes?.RedrivePolicy ?? '{}') as { deadLetterTargetArn?: string }
    expect(policy.deadLetterTargetArn).toMatch(new RegExp(`:${q}-dead$`))
  })

  it('without autoCreate a missing queue is an ERR_INVALID_OPTION naming it', async () => {
    const broker = await open({ autoCreate: false })
    const q = uniqueQueue()
    await expect(broker.publish(q, [{ body: enc.encode('x') }])).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
      message: expect.stringContaining(q),
    })
  })

  it('validates queue names', async () => {
    const broker = await open()
    await expect(broker.publish('bad name!', [])).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' })
    await expect(broker.publish('x'.repeat(71), [])).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' })
    await expect(broker.publish('x'.repeat(70), [])).resolves.toBeUndefined()
  })

  it('a message due in more than the hold window hops by visibility and is never early', async () => {
    const broker = await open()
    const q = uniqueQueue()
    await broker.stats(q)
    const box = inbox()
    await broker.consume(q, box.handler, { prefetch: 5 })
    // Straight into the delay queue, visible at once but due in 3.5 s, with 2 deliveries behind it.
    const due = Date.now() + 3_500
    await broker.client.send(
      new SendMessageCommand({
        QueueUrl: await queueUrl(broker, `${q}-delay`),
        MessageBody: 'hopped',
        MessageAttributes: {
          [ATTR.notBefore]: { DataType: 'Number', StringValue: String(due) },
          [ATTR.base]: { DataType: 'Number', StringValue: '2' },
        },
      }),
    )
    const [got] = await box.take(1, 10_000)
    expect(got!.at).toBeGreaterThanOrEqual(due)
    expect(got!.at).toBeLessThanOrEqual(due + 1_500)
    expect(dec.decode(got!.d.body)).toBe('hopped')
    expect(got!.d.attempt).toBe(3)
    await got!.d.ack()
  })

  it('a nack longer than the visibility left (12 h from the receive) is re-sent to the delay queue with its due time', async () => {
    const broker = await open()
    const q = uniqueQueue()
    const box = inbox()
    await broker.consume(q, box.handler, { prefetch: 1 })
    await broker.publish(q, [{ body: enc.encode('tomorrow') }])
    const [first] = await box.take()
    // Over maxDelayMs (15 min) is refused, as on every store (core never asks for more).
    await expect(first!.d.nack({ delayMs: 13 * 3_600_000 })).rejects.toMatchObject({
      code: 'ERR_NOT_SUPPORTED',
    })
    // A receive of 11 h 54 min ago has 6 min of visibility left: a 15 min nack is a re-send.
    ;(first!.d as unknown as { receivedAt: number }).receivedAt = Date.now() - (11 * 60 + 54) * 60_000
    await first!.d.nack({ delayMs: broker.capabilities.maxDelayMs })
    expect(await broker.stats(q)).toMatchObject({ ready: 0, inFlight: 0, delayed: 1 })
    await new Promise((r) => setTimeout(r, 1_500))
    expect(box.count).toBe(1)
    expect(await broker.purge(q)).toBe(1)
  })

  it('a poll that returns after cancel gives its messages back without counting an attempt', async () => {
    const a = await open()
    const b = await open()
    const q = uniqueQueue()
    await a.stats(q)
    const boxA = inbox()
    const consumer = await a.consume(q, boxA.handler, { prefetch: 5 })
    await new Promise((r) => setTimeout(r, 200)) // a's long poll is waiting on the server
    await consumer.cancel()
    await a.publish(q, [{ body: enc.encode('given back') }])
    const boxB = inbox()
    await b.consume(q, boxB.handler, { prefetch: 5 })
    const [got] = await boxB.take(1, 10_000)
    expect(boxA.count).toBe(0)
    expect(got!.d.attempt).toBe(1)
    await got!.d.ack()
  })

  it('extend keeps a delivery invisible past its lease; without it the message comes back', async () => {
    const a = await open()
    const q = uniqueQueue()
    const box = inbox()
    // A 2 s lease extended every 0.6 s: 1.4 s of margin for a loaded machine's timers and calls
    // (SQS visibility has whole seconds; a 1 s lease ran out under load before the extend landed).
    await a.consume(q, box.handler, { prefetch: 3, leaseMs: 2_000 })
    await a.publish(q, [{ body: enc.encode('held') }, { body: enc.encode('dropped') }])
    const got = await box.take(2)
    const held = got.find(({ d }) => dec.decode(d.body) === 'held')!.d
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 600))
      await held.extend!(2_000)
    }
    const [again] = await box.take(1, 5_000)
    expect(dec.decode(again!.d.body)).toBe('dropped')
    expect(again!.d.attempt).toBe(2)
    await again!.d.ack()
    await held.ack()
    expect(await a.stats(q)).toMatchObject({ ready: 0, inFlight: 0 })
  })
})

describe('sqs broker: FIFO queues', () => {
  it('keeps the order of an ordering key and deduplicates by dedupId', async () => {
    const broker = await open({ fifo: true })
    const q = uniqueQueue('fifo')
    expect(broker.capabilities.orderedDelivery).toBe(true)
    await broker.publish(
      q,
      Array.from({ length: 6 }, (_, i) => ({
        body: enc.encode(`k${i}`),
        orderingKey: 'key',
        dedupId: `id-${i}`,
      })),
    )
    await broker.publish(q, [{ body: enc.encode('k0 again'), orderingKey: 'key', dedupId: 'id-0' }])
    expect((await broker.stats(q)).ready).toBe(6)
    const box = inbox()
    await broker.consume(q, box.handler, { prefetch: 10 })
    const order: string[] = []
    for (let i = 0; i < 6; i++) {
      const [got] = await box.take()
      order.push(dec.decode(got!.d.body))
      await got!.d.ack()
    }
    expect(order).toEqual(['k0', 'k1', 'k2', 'k3', 'k4', 'k5'])
  })

  it('a delayed message on a FIFO queue waits in the delay queue and keeps its group and dedup id', async () => {
    const broker = await open()
    const q = `${uniqueQueue('fifo')}.fifo`
    const before = Date.now()
    await broker.publish(q, [
      { body: enc.encode('late'), orderingKey: 'g', dedupId: 'late-1', delayMs: 1_200 },
    ])
    expect(await broker.stats(q)).toMatchObject({ ready: 0, delayed: 1 })
    const box = inbox()
    await broker.consume(q, box.handler, { prefetch: 5 })
    const [got] = await box.take(1, 10_000)
    expect(got!.at - before).toBeGreaterThanOrEqual(1_200)
    expect(dec.decode(got!.d.body)).toBe('late')
    expect(got!.d.attempt).toBe(1)
    await got!.d.ack()
  })
})
