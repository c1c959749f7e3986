import { isErrandError } from '@errand/core'
import amqp, { type ChannelModel } from 'amqplib'
import { afterAll, describe, expect, it } from 'vitest'
import { AmqpBroker } from '../src/index.js'
import {
  AMQP_URL,
  BrokerPool,
  Collector,
  dec,
  enc,
  forceCloseConnections,
  quietLogger,
  rabbitAvailable,
  TEST_QUEUE_EXPIRES_MS,
  uniqueQueue,
} from './helpers.js'

const available = await rabbitAvailable()
const pool = new BrokerPool()

/** A broker whose connections come from a factory the test controls, to drop them at will. */
function droppable(extra: { reconnectWaitMs?: number } = {}) {
  const state: { current: ChannelModel | undefined; refuse: boolean; opened: number } = {
    current: undefined,
    refuse: false,
    opened: 0,
  }
  const logger = quietLogger()
  const broker = pool.track(
    new AmqpBroker({
      connection: async () => {
        if (state.refuse) throw new Error('connection refused (test)')
        state.current = await amqp.connect(AMQP_URL)
        state.opened++
        return state.current
      },
      queueExpiresMs: TEST_QUEUE_EXPIRES_MS,
      reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
      logger,
      ...extra,
    }),
  )
  return { broker, state, logger }
}

describe.runIf(available)('amqp reconnect', () => {
  afterAll(() => pool.cleanup(), 60_000)

  it('after a drop: held deliveries come back with attempt + 1, stale settles do nothing, the consumer resumes, publishes wait', async () => {
    const q = uniqueQueue()
    const { broker, state, logger } = droppable()
    await broker.connect()
    const inbox = new Collector()
    await broker.consume(q, inbox.handler, { prefetch: 5 })
    await broker.publish(
      q,
      ['a', 'b', 'c'].map((s) => ({ body: enc(s) })),
    )
    await inbox.waitFor(3)
    const stale = inbox.items.map((i) => i.delivery)
    await state.current!.close()
    const during = broker.publish(q, [{ body: enc('during') }])
    await Promise.all([
      stale[0]!.ack(),
      stale[1]!.nack({ delayMs: 10 }),
      stale[2]!.deadLetter({ reason: 'rejected' }),
    ])
    await during
    await inbox.waitFor(7)
    const again = inbox.items.slice(3).map((i) => [dec(i.delivery.body), i.delivery.attempt])
    expect(again.sort()).toEqual([
      ['a', 2],
      ['b', 2],
      ['c', 2],
      ['during', 1],
    ])
    for (const { delivery } of inbox.items.slice(3)) await delivery.ack()
    expect(await broker.stats(q)).toMatchObject({ ready: 0, delayed: 0, dead: 0 })
    await logger.waitFor(/reconnected/, 1_000)
  })

  it('a dropped channel releases its deliveries: settling one resolves without effect, after close() ERR_CLOSED', async () => {
    const q = uniqueQueue()
    const { broker, state } = droppable()
    await broker.connect()
    const inbox = new Collector()
    // Over AMQP's 16-bit basic.qos: accepted (core's one prefetch rule), held to 65 535.
    await broker.consume(q, inbox.handler, { prefetch: 100_000 })
    await broker.publish(q, [{ body: enc('x') }])
    await inbox.waitFor(1)
    const stale = inbox.items[0]!.delivery
    await state.current!.close()
    await stale.nack()
    await inbox.waitFor(2)
    expect(inbox.items[1]!.delivery.attempt).toBe(2)
    await inbox.items[1]!.delivery.ack()
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(inbox.items, 'the stale nack published no copy').toHaveLength(2)
    await broker.close()
    const err = await stale.ack().then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(isErrandError(err, 'ERR_CLOSED'), String(err)).toBe(true)
  })

  it('a batch in flight when the connection drops is sent again: nothing lost', async () => {
    const q = uniqueQueue()
    const { broker, state } = droppable()
    await broker.connect()
    await broker.stats(q)
    const n = 3_000
    const publishing = broker.publish(
      q,
      Array.from({ length: n }, (_, i) => ({ body: enc(String(i)) })),
    )
    setImmediate(() => void state.current!.close())
    await publishing
    expect(state.opened, 'the batch was confirmed on the second connection').toBe(2)
    const seen = new Set<string>()
    let done!: () => void
    const finished = new Promise<void>((resolve) => {
      done = resolve
    })
    await broker.consume(
      q,
      (delivery) => {
        seen.add(dec(delivery.body))
        void delivery.ack()
        if (seen.size === n) done()
      },
      { prefetch: 500 },
    )
    await finished
    expect(seen.size).toBe(n)
  })

  it('reconnectWaitMs bounds the wait: ERR_CONNECTION while RabbitMQ is unreachable, then it works again', async () => {
    const q = uniqueQueue()
    const { broker, state, logger } = droppable({ reconnectWaitMs: 300 })
    await broker.publish(q, [{ body: enc('first') }])
    state.refuse = true
    await state.current!.close()
    const started = Date.now()
    const err = await broker.publish(q, [{ body: enc('lost?') }]).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(isErrandError(err, 'ERR_CONNECTION'), String(err)).toBe(true)
    expect(Date.now() - started).toBeGreaterThanOrEqual(250)
    state.refuse = false
    await logger.waitFor(/reconnected/, 5_000)
    await broker.publish(q, [{ body: enc('second') }])
    expect((await broker.stats(q)).ready).toBe(2)
  })

  it('RabbitMQ closing the connection (CONNECTION_FORCED) is survived: the consumer resumes by itself', async () => {
    const q = uniqueQueue()
    const name = `errand-test-${Date.now().toString(36)}`
    const logger = quietLogger()
    const broker = pool.broker({
      connectionName: name,
      logger,
      reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
    })
    const inbox = new Collector()
    await broker.consume(q, inbox.handler, { prefetch: 5 })
    await broker.publish(q, [{ body: enc('held') }])
    await inbox.waitFor(1)
    await forceCloseConnections(name)
    await logger.waitFor(/connection lost/, 5_000)
    await broker.publish(q, [{ body: enc('after') }])
    await inbox.waitFor(3)
    expect(
      inbox.items
        .slice(1)
        .map((i) => `${dec(i.delivery.body)}:${i.delivery.attempt}`)
        .sort(),
    ).toEqual(['after:1', 'held:2'])
    await inbox.items[0]!.delivery.ack() // stale: does nothing
    for (const { delivery } of inbox.items.slice(1)) await delivery.ack()
    expect((await broker.stats(q)).ready).toBe(0)
  }, 30_000)
})
