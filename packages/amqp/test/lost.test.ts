// Delivery.lost on AMQP: RabbitMQ has no leases, but when the channel a delivery came on closes,
// the server puts its unacknowledged messages back; the deliveries of that channel are lost.
import { createApp, defineTask, isErrandError, MemoryResultBackend, silentLogger } from '@errand/core'
import amqp, { type ChannelModel } from 'amqplib'
import { afterAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { AmqpBroker } from '../src/index.js'
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

/** A broker whose connection the test can drop (`state.current.close()`). */
function droppable() {
  const state: { current: ChannelModel | undefined } = { current: undefined }
  const broker = pool.track(
    new AmqpBroker({
      connection: async () => {
        state.current = await amqp.connect(AMQP_URL)
        return state.current
      },
      queueExpiresMs: TEST_QUEUE_EXPIRES_MS,
      reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
      logger: quietLogger(),
    }),
  )
  return { broker, state }
}

describe.runIf(available)('amqp: Delivery.lost', () => {
  afterAll(() => pool.cleanup(), 60_000)

  it('a channel closing under unsettled deliveries aborts their lost signal with ERR_LOST; settling them does nothing; the message comes back', async () => {
    const q = uniqueQueue()
    const { broker, state } = droppable()
    await broker.connect()
    const inbox = new Collector()
    await broker.consume(q, inbox.handler, { prefetch: 5 })
    await broker.publish(q, [{ body: enc('held') }])
    await inbox.waitFor(1)
    const held = inbox.items[0]!.delivery
    const lost = held.lost
    expect(lost, 'AMQP deliveries carry a lost signal').toBeDefined()
    expect(lost!.aborted).toBe(false)

    await state.current!.close()
    await expect.poll(() => lost!.aborted, { timeout: 5_000 }).toBe(true)
    const reason = lost!.reason as Error
    expect(isErrandError(reason, 'ERR_LOST'), String(reason)).toBe(true)
    expect(reason.message).toMatch(/channel .*closed.*put .* back/)

    // Settling a lost delivery resolves without effect (RabbitMQ already has the message back).
    await held.ack()
    await inbox.waitFor(2)
    const again = inbox.items[1]!.delivery
    expect([dec(again.body), again.attempt]).toEqual(['held', 2])
    expect(again.lost?.aborted).toBe(false)
    await again.ack()
    await expect.poll(async () => (await broker.stats(q)).ready, { timeout: 5_000 }).toBe(0)
    expect(inbox.items).toHaveLength(2)
  })

  it('a channel closed with nothing unsettled loses nothing', async () => {
    const q = uniqueQueue()
    const { broker, state } = droppable()
    await broker.connect()
    const inbox = new Collector()
    await broker.consume(q, inbox.handler, { prefetch: 5 })
    await broker.publish(q, [{ body: enc('done') }])
    await inbox.waitFor(1)
    const done = inbox.items[0]!.delivery
    await done.ack()
    // Let the ack reach the server before the connection goes.
    await expect.poll(async () => (await broker.stats(q)).inFlight ?? 0, { timeout: 5_000 }).toBe(0)
    await state.current!.close()
    await broker.publish(q, [{ body: enc('after') }])
    await inbox.waitFor(2)
    expect(done.lost?.aborted, 'a delivery settled before its channel closed is not lost').toBe(false)
    await inbox.items[1]!.delivery.ack()
  })

  it("a worker's handler sees ctx.signal abort with ERR_LOST when its channel closes, and the task runs again", async () => {
    const q = uniqueQueue()
    const { broker, state } = droppable()
    let runs = 0
    let seen: unknown
    let started: () => void = () => {}
    const running = new Promise<void>((resolve) => {
      started = resolve
    })
    const task = defineTask({
      name: 'amqp.lost',
      queue: q,
      input: z.null(),
      handler: async (_, ctx) => {
        runs++
        if (runs > 1) return 'second run'
        started()
        return await new Promise<string>((_, reject) =>
          ctx.signal.addEventListener('abort', () => {
            seen = ctx.signal.reason
            reject(ctx.signal.reason)
          }),
        )
      },
    })
    const app = createApp({
      broker,
      backend: new MemoryResultBackend({ name: `amqp-lost-${q}` }),
      tasks: [task],
      logger: silentLogger,
    })
    try {
      await app.worker().start()
      const sent = await app.send(task.s(null))
      await running
      await state.current!.close()
      await expect.poll(() => seen, { timeout: 5_000 }).toBeInstanceOf(Error)
      expect(isErrandError(seen, 'ERR_LOST'), String(seen)).toBe(true)
      expect(await sent.get({ timeoutMs: 20_000 })).toBe('second run')
      expect(runs).toBe(2)
    } finally {
      await app.close()
    }
  })
})
