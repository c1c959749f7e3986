import { isErrandError } from '@errand/core'
import amqp from 'amqplib'
import { afterAll, describe, expect, it } from 'vitest'
import { AmqpBroker, deadQueueName } from '../src/index.js'
import {
  AMQP_URL,
  BrokerPool,
  Collector,
  dec,
  enc,
  quietLogger,
  rabbitAvailable,
  TEST_QUEUE_EXPIRES_MS,
  uniqueQueue,
} from './helpers.js'

const available = await rabbitAvailable()
const pool = new BrokerPool()

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection')
    },
    (err: unknown) => err,
  )
}

describe.runIf(available)('amqp broker (RabbitMQ specifics)', () => {
  afterAll(() => pool.cleanup(), 60_000)

  it('delays are exact: each bit pattern arrives no earlier than asked and soon after', async () => {
    const broker = pool.broker()
    await broker.connect()
    const q = uniqueQueue()
    const delays = [1, 7, 33, 129, 250, 513, 1000]
    const inbox = new Collector()
    await broker.consume(q, inbox.handler, { prefetch: 20 })
    const before = Date.now()
    await broker.publish(
      q,
      delays.map((delayMs) => ({ body: enc(String(delayMs)), delayMs })),
    )
    // The first delayed publish to a queue declares its delay levels: on time counts from its end.
    const after = Date.now()
    await inbox.waitFor(delays.length, 5_000)
    for (const { delivery, at } of inbox.items) {
      const delay = Number(dec(delivery.body))
      expect(at - before, `delay ${delay} early`).toBeGreaterThanOrEqual(delay - 2)
      expect(at - after, `delay ${delay} late`).toBeLessThanOrEqual(delay + 300)
      await delivery.ack()
    }
  })

  it('a queue declared with another maxPriority is refused with ERR_INVALID_OPTION naming maxPriority', async () => {
    const q = uniqueQueue()
    const first = pool.broker({ maxPriority: 9 })
    await first.publish(q, [{ body: enc('x') }])
    const other = pool.broker({ maxPriority: 5 })
    const err = await rejection(other.publish(q, [{ body: enc('y') }]))
    expect(isErrandError(err, 'ERR_INVALID_OPTION'), String(err)).toBe(true)
    expect((err as { option: string }).option).toBe('maxPriority')
    expect((err as Error).message).toContain(q)
    // The refusal closed a channel, not the broker: other queues still work.
    const q2 = uniqueQueue()
    await other.publish(q2, [{ body: enc('z') }])
    expect((await other.stats(q2)).ready).toBe(1)
    expect((await first.stats(q)).ready).toBe(1)
  })

  it('attempt: quorum and classic queues both count every return (classic by re-counting)', async () => {
    for (const queueType of ['quorum', 'classic'] as const) {
      const q = uniqueQueue()
      const producer = pool.broker({ queueType })
      await producer.publish(q, [{ body: enc('crashy') }])
      const attempts: number[] = []
      for (let i = 0; i < 3; i++) {
        const worker = pool.broker({ queueType })
        const inbox = new Collector()
        await worker.consume(q, inbox.handler, { prefetch: 1 })
        await inbox.waitFor(1)
        attempts.push(inbox.items[0]!.delivery.attempt)
        await worker.close() // dies without settling
      }
      expect(attempts, queueType).toEqual([1, 2, 3])
    }
  })

  it('a message from a foreign producer (no message-id) gets a stable id and is counted', async () => {
    const q = uniqueQueue()
    const broker = pool.broker()
    await broker.stats(q) // declares it
    const model = await amqp.connect(AMQP_URL)
    try {
      const ch = await model.createConfirmChannel()
      ch.sendToQueue(q, Buffer.from('not an envelope'))
      await ch.waitForConfirms()
    } finally {
      await model.close()
    }
    const inbox = new Collector()
    await broker.consume(q, inbox.handler, { prefetch: 1 })
    await inbox.waitFor(1)
    const first = inbox.items[0]!.delivery
    expect(first.messageId).toMatch(/^sha256:[0-9a-f]{32}$/)
    await first.nack()
    await inbox.waitFor(2)
    const second = inbox.items[1]!.delivery
    expect(second.messageId).toBe(first.messageId)
    expect(second.attempt).toBe(2)
    await second.deadLetter({ reason: 'undecodable', error: { name: 'DecodeError', message: 'bad JSON' } })
    const [dead] = await broker.listDeadLetters(q)
    expect(dead).toMatchObject({ id: first.messageId, reason: 'undecodable', error: { message: 'bad JSON' } })
    expect(dec(dead!.body)).toBe('not an envelope')
  })

  it('dead letters carry their reason, error, time and attempt in headers, and keep the priority', async () => {
    const q = uniqueQueue()
    const broker = pool.broker({ maxPriority: 9 })
    const inbox = new Collector()
    await broker.consume(q, inbox.handler, { prefetch: 1 })
    await broker.publish(q, [{ body: enc('p'), priority: 7 }])
    await inbox.waitFor(1)
    const longStack = `Error: boom\n${'    at somewhere (file.js:1:1)\n'.repeat(5_000)}`
    await inbox.items[0]!.delivery.deadLetter({
      reason: 'exhausted',
      error: { name: 'Error', message: 'boom', stack: longStack },
    })
    const model = await amqp.connect(AMQP_URL)
    try {
      const ch = await model.createChannel()
      const raw = await ch.get(deadQueueName(q), { noAck: false })
      expect(raw).not.toBe(false)
      if (raw === false) return
      const headers = raw.properties.headers ?? {}
      expect(headers['x-errand-reason']).toBe('exhausted')
      expect(headers['x-errand-queue']).toBe(q)
      expect(headers['x-errand-deliveries']).toBe(1)
      expect(typeof headers['x-errand-dead-at']).toBe('number')
      const error = JSON.parse(String(headers['x-errand-error'])) as { stack: string }
      expect(error.stack.length).toBeLessThan(16 * 1024)
      expect(raw.properties.priority).toBe(7)
      await ch.close()
    } finally {
      await model.close()
    }
  })

  it('a queue deleted under a running broker is declared again on the next publish', async () => {
    const q = uniqueQueue()
    const broker = pool.broker()
    await broker.publish(q, [{ body: enc('before') }])
    const model = await amqp.connect(AMQP_URL)
    try {
      const ch = await model.createChannel()
      await ch.deleteQueue(q)
    } finally {
      await model.close()
    }
    await broker.publish(q, [{ body: enc('after') }])
    expect((await broker.stats(q)).ready).toBe(1)
  })

  it('a caller-owned connection is not closed by the broker; once it drops, calls fail with ERR_CONNECTION', async () => {
    const model = await amqp.connect(AMQP_URL)
    model.on('error', () => {})
    const q = uniqueQueue()
    const broker = pool.track(
      new AmqpBroker({ connection: model, queueExpiresMs: TEST_QUEUE_EXPIRES_MS, logger: quietLogger() }),
    )
    await broker.publish(q, [{ body: enc('x') }])
    await broker.close()
    const ch = await model.createChannel() // still open
    await ch.close()
    const second = pool.track(
      new AmqpBroker({ connection: model, queueExpiresMs: TEST_QUEUE_EXPIRES_MS, logger: quietLogger() }),
    )
    await second.connect()
    await model.close()
    const err = await rejection(second.publish(q, [{ body: enc('y') }]))
    expect(isErrandError(err, 'ERR_CONNECTION'), String(err)).toBe(true)
  })

  it('deleteQueue removes the queue with its dead-letter and delay queues', async () => {
    const q = uniqueQueue()
    const broker = pool.broker()
    await broker.publish(q, [{ body: enc('now') }, { body: enc('later'), delayMs: 60_000 + 5 }])
    const stats = await broker.stats(q)
    expect(stats).toMatchObject({ ready: 1, delayed: 1, dead: 0 })
    expect(await broker.deleteQueue(q)).toBe(2)
    const model = await amqp.connect(AMQP_URL)
    try {
      for (const name of [q, deadQueueName(q), `${q}.delay.0`, `${q}.delay.15`]) {
        const ch = await model.createChannel()
        ch.on('error', () => {})
        const err = await rejection(ch.checkQueue(name))
        expect((err as { code?: number }).code, name).toBe(404)
      }
    } finally {
      await model.close()
    }
  })
})
