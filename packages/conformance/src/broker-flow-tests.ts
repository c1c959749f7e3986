import type { Broker, Delivery, OutgoingMessage } from '@errand/core'
import { expect } from 'vitest'
import type { BrokerSuiteContext } from './harness.js'
import { consumeInto, decode, deferred, encode, Inbox, sleep, withTimeout } from './helpers.js'

/** Publish `messages` in batches of `maxBatchSize`, a few batches in flight at once. */
async function publishAll(
  broker: Broker,
  queue: string,
  messages: readonly OutgoingMessage[],
): Promise<void> {
  const size = Math.max(1, broker.capabilities.maxBatchSize)
  const batches: OutgoingMessage[][] = []
  for (let i = 0; i < messages.length; i += size) batches.push(messages.slice(i, i + size))
  let next = 0
  const lane = async () => {
    while (next < batches.length) await broker.publish(queue, batches[next++]!)
  }
  await Promise.all(Array.from({ length: 8 }, lane))
}

/** Flow control and sharing: competing consumers, prefetch, cancel, separate queues. */
export function registerFlowTests({ test, h, soon, stressMessages }: BrokerSuiteContext): void {
  test(
    'competing consumers on one queue: no loss, no duplicate',
    async () => {
      const q = h.queue()
      const a = await h.open()
      const b = await h.open()
      const n = stressMessages
      const seen = new Uint8Array(n)
      const perConsumer = { a: 0, b: 0 }
      let distinct = 0
      let duplicates = 0
      let bad = 0
      const acks: Promise<void>[] = []
      const all = deferred()
      const handler = (by: 'a' | 'b') => (delivery: Delivery) => {
        perConsumer[by]++
        const i = Number(decode(delivery.body))
        if (!Number.isInteger(i) || i < 0 || i >= n) bad++
        else if (seen[i]! > 0) duplicates++
        else {
          seen[i] = 1
          distinct++
        }
        acks.push(delivery.ack())
        if (distinct === n) all.resolve()
      }
      await a.consume(q, handler('a'), { prefetch: 64 })
      await b.consume(q, handler('b'), { prefetch: 64 })
      await publishAll(
        a,
        q,
        Array.from({ length: n }, (_, i) => ({ body: encode(String(i)) })),
      )
      await withTimeout(all.promise, h.ms(60_000), `${n} distinct deliveries`).catch((err: unknown) => {
        throw new Error(`${String(err)}; got ${distinct} distinct, ${duplicates} duplicates`)
      })
      await Promise.all(acks)
      expect(
        bad,
        "a delivery's body was not one of the published messages (bytes changed or foreign message)",
      ).toBe(0)
      expect(
        duplicates,
        'a message was delivered twice to the competing consumers (each must get a distinct subset)',
      ).toBe(0)
      expect(distinct, 'every published message must be delivered (distinct count)').toBe(n)
      expect(perConsumer.a, 'consumer a got nothing').toBeGreaterThan(0)
      expect(perConsumer.b, 'consumer b got nothing').toBeGreaterThan(0)
      const stats = await a.stats(q)
      expect(stats.ready, 'after all were acked, stats().ready must be 0').toBe(0)
      if (stats.inFlight !== undefined)
        expect(stats.inFlight, 'after all were acked, stats().inFlight must be 0').toBe(0)
    },
    h.ms(120_000),
  )

  test('prefetch bounds the unsettled deliveries of a consumer', async () => {
    const q = h.queue()
    const broker = await h.open()
    const prefetch = 3
    const total = 12
    let unsettled = 0
    let most = 0
    const held: Delivery[] = []
    let holding = true
    let acked = 0
    const done = deferred()
    const settle = (delivery: Delivery) => {
      unsettled-- // counted before the call: the broker may deliver the next one as soon as it sees it
      void delivery.ack().then(() => {
        if (++acked === total) done.resolve()
      }, done.reject)
    }
    const first = deferred()
    await broker.consume(
      q,
      (delivery) => {
        most = Math.max(most, ++unsettled)
        if (holding) {
          held.push(delivery)
          if (held.length === prefetch) first.resolve()
        } else setTimeout(() => settle(delivery), Math.floor(Math.random() * 5))
      },
      { prefetch },
    )
    await broker.publish(
      q,
      Array.from({ length: total }, (_, i) => ({ body: encode(String(i)) })),
    )
    await withTimeout(first.promise, soon, `${prefetch} deliveries`)
    // Nothing more may arrive while the first `prefetch` are held.
    await sleep(h.ms(300))
    expect(
      held.length,
      'a consumer with prefetch 3 must get exactly 3 deliveries while it holds them unsettled',
    ).toBe(prefetch)
    holding = false
    for (const delivery of held) settle(delivery)
    await withTimeout(done.promise, soon, `${total} acks`)
    expect(most, 'the most deliveries held unsettled at once must equal the prefetch (never more)').toBe(
      prefetch,
    )
  })

  test('cancel stops deliveries; deliveries already handed out stay valid', async () => {
    const q = h.queue()
    const a = await h.open()
    const b = await h.open()
    const inboxA = new Inbox(soon)
    const consumer = await consumeInto(a, q, inboxA, { prefetch: 5 }, 'a')
    await a.publish(q, [{ body: encode('before') }])
    const kept = await inboxA.next()
    await consumer.cancel()
    await a.publish(
      q,
      Array.from({ length: 5 }, (_, i) => ({ body: encode(`after-${i}`) })),
    )
    const inboxB = new Inbox(soon)
    await consumeInto(b, q, inboxB, { prefetch: 10 }, 'b')
    await inboxB.waitForCount(5)
    expect(inboxA.count, 'a received after cancel').toBe(1)
    expect(
      inboxB.received.map((r) => decode(r.delivery.body)).sort(),
      'messages published after a consumer was canceled must all go to the other consumer',
    ).toEqual(['after-0', 'after-1', 'after-2', 'after-3', 'after-4'])
    await kept.ack()
    for (const { delivery } of inboxB.received) await delivery.ack()
    const stats = await a.stats(q)
    expect(stats.ready, 'after acking everything, stats().ready must be 0').toBe(0)
    if (stats.inFlight !== undefined)
      expect(
        stats.inFlight,
        'after acking everything, stats().inFlight must be 0 (the delivery kept across cancel was acked)',
      ).toBe(0)
    expect(inboxB.count, 'the other consumer must get exactly the 5 messages published after cancel').toBe(5)
  })

  test('different queues are separate', async () => {
    const q1 = h.queue()
    const q2 = h.queue()
    const broker = await h.open()
    await broker.publish(q1, [{ body: encode('one') }])
    await broker.publish(q2, [{ body: encode('two') }, { body: encode('two') }])
    const s1 = await broker.stats(q1)
    const s2 = await broker.stats(q2)
    expect(
      [s1.ready, s2.ready],
      "stats().ready of two queues must count each queue's own messages ([1, 2])",
    ).toEqual([1, 2])
    const inbox1 = new Inbox(soon)
    await consumeInto(broker, q1, inbox1, { prefetch: 5 })
    const one = await inbox1.next()
    expect(decode(one.body), "a consumer of queue 1 must get queue 1's message").toBe('one')
    await one.ack()
    const inbox2 = new Inbox(soon)
    await consumeInto(broker, q2, inbox2, { prefetch: 5 })
    await inbox2.waitForCount(2)
    for (const { delivery } of inbox2.received) {
      expect(decode(delivery.body), "a consumer of queue 2 must get only queue 2's messages").toBe('two')
      await delivery.ack()
    }
    expect(inbox1.count, 'the consumer of queue 1 received a message of queue 2').toBe(1)
  })
}
