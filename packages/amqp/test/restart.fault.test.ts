import type { Delivery } from '@errand/core'
import { afterAll, describe, expect, it } from 'vitest'
import { BrokerPool, dec, enc, quietLogger, rabbitAvailable, rabbitmqctl, uniqueQueue } from './helpers.js'

const available = await rabbitAvailable()
const pool = new BrokerPool()

/** Resolves once RabbitMQ accepts connections again (rabbitmqctl await_startup waits for the app). */
async function startRabbit(): Promise<void> {
  await rabbitmqctl('start_app')
  await rabbitmqctl('await_startup')
}

describe.runIf(available)('amqp: RabbitMQ restarts mid-run', () => {
  afterAll(() => pool.cleanup(), 60_000)

  it('stop_app / start_app while publishing and consuming: every message is handled, none lost', async () => {
    const q = uniqueQueue('amqp-fault')
    const fast = { reconnect: { initialDelayMs: 50, maxDelayMs: 500 }, reconnectWaitMs: 60_000 }
    const producer = pool.broker({ ...fast, logger: quietLogger() })
    const consumerLogger = quietLogger()
    const consumer = pool.broker({ ...fast, logger: consumerLogger })
    const total = 600
    const seen = new Map<string, number>()
    let handled = 0
    // Every delivery's settle is tracked to the end: the test waits for all of them before the
    // broker closes (an ack after close rejects with ERR_CLOSED, as documented) and fails on any
    // settle that rejected (an ack on a channel that died resolves quietly: RabbitMQ put it back).
    let inHand = 0
    const settleErrors: unknown[] = []
    let allSettled: (() => void) | undefined
    let done!: () => void
    const allSeen = new Promise<void>((resolve) => {
      done = resolve
    })
    const onDelivery = (delivery: Delivery) => {
      const body = dec(delivery.body)
      seen.set(body, (seen.get(body) ?? 0) + 1)
      handled++
      inHand++
      // Settle a little later, as a task would: some deliveries are in hand when the server stops.
      setTimeout(() => {
        delivery
          .ack()
          .catch((err: unknown) => settleErrors.push(err))
          .finally(() => {
            inHand--
            if (inHand === 0) allSettled?.()
          })
        if (seen.size === total) done()
      }, 5)
    }
    const consuming = await consumer.consume(q, onDelivery, { prefetch: 20 })
    let published = 0
    let stopped!: () => void
    const serverStopped = new Promise<void>((resolve) => {
      stopped = resolve
    })
    const publishing = (async () => {
      for (let batch = 0; batch < total / 10; batch++) {
        // The second half is published while RabbitMQ is down: those calls wait for the reconnect.
        if (batch === total / 20) await serverStopped
        // Every third batch is delayed: delay queues must survive the restart too.
        const delayMs = batch % 3 === 0 ? 300 : 0
        await producer.publish(
          q,
          Array.from({ length: 10 }, (_, i) => ({ body: enc(String(batch * 10 + i)), delayMs })),
        )
        published += 10
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    })()
    try {
      while (handled < 150) await new Promise((resolve) => setTimeout(resolve, 20))
      await rabbitmqctl('stop_app')
      stopped()
      expect(published).toBeLessThan(total)
      await new Promise((resolve) => setTimeout(resolve, 500))
    } finally {
      stopped()
      await startRabbit()
    }
    await publishing
    await Promise.race([
      allSeen,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`only ${seen.size}/${total} distinct messages handled`)), 30_000),
      ),
    ])
    // No further delivery, then every one in hand settled: nothing is left to land after close.
    await consuming.cancel()
    if (inHand > 0) await new Promise<void>((resolve) => (allSettled = resolve))
    expect(settleErrors, 'acks that rejected').toEqual([])
    expect(seen.size).toBe(total)
    expect(await consumerLogger.waitFor(/reconnected/, 1_000)).toBeTruthy()
    const duplicates = [...seen.values()].filter((n) => n > 1).length
    // At-least-once: deliveries in hand at the stop come back (attempt + 1); that is all.
    expect(duplicates).toBeLessThanOrEqual(20 + 10)
  }, 90_000)
})
