import { expect } from 'vitest'
import type { BrokerSuiteContext } from './harness.js'
import { CLOCK_SLACK_MS, consumeInto, decode, encode, Inbox, settleQuietly, sleep } from './helpers.js'

/** What happens to deliveries nobody settles: closed connections, leases, extend. */
export function registerRedeliveryTests({ test, h, soon }: BrokerSuiteContext): void {
  test('closing a broker with an unsettled delivery redelivers it to another with attempt + 1', async () => {
    const q = h.queue()
    const a = await h.open()
    const b = await h.open()
    const inboxA = new Inbox(soon)
    await consumeInto(a, q, inboxA, { prefetch: 1 }, 'a')
    await a.publish(q, [{ body: encode('orphan') }])
    const first = await inboxA.next()
    expect(first.attempt, 'a message delivered for the first time must have attempt 1').toBe(1)
    // b is already waiting when a goes away: the message must come back at once, not after a lease.
    const inboxB = new Inbox(soon)
    await consumeInto(b, q, inboxB, { prefetch: 1 }, 'b')
    await h.close(a)
    const again = await inboxB.next()
    expect(
      again.messageId,
      'the message given back at close must be redelivered with the same messageId',
    ).toBe(first.messageId)
    expect(again.attempt, 'the message given back at close must be redelivered with attempt + 1 (2)').toBe(2)
    expect(
      decode(again.body),
      'the message given back at close must be redelivered with the same bytes',
    ).toBe('orphan')
    await again.ack()
  })

  test('close with deliveries in flight loses nothing', async () => {
    const q = h.queue()
    const a = await h.open()
    const inboxA = new Inbox(soon)
    const consumerA = await consumeInto(a, q, inboxA, { prefetch: 10 }, 'a')
    await a.publish(
      q,
      Array.from({ length: 20 }, (_, i) => ({ body: encode(String(i)) })),
    )
    await inboxA.waitForCount(10)
    await consumerA.cancel()
    expect(
      inboxA.count,
      'with prefetch 10, exactly 10 deliveries should arrive before the consumer is canceled',
    ).toBe(10)
    const acked = new Set<string>()
    for (const { delivery } of inboxA.received.slice(0, 5)) {
      await delivery.ack()
      acked.add(decode(delivery.body))
    }
    const held = new Set(inboxA.received.slice(5).map((r) => decode(r.delivery.body)))
    await h.close(a)
    const b = await h.open()
    const inboxB = new Inbox(soon)
    await consumeInto(b, q, inboxB, { prefetch: 20 }, 'b')
    await inboxB.waitForCount(15)
    const bodies = inboxB.received.map((r) => decode(r.delivery.body))
    expect(
      new Set(bodies).size,
      'each of the 15 messages not acked (10 never delivered + 5 held at close) must be delivered once to the new broker, no duplicates',
    ).toBe(15)
    for (const body of bodies) expect(acked.has(body), `acked message ${body} came back`).toBe(false)
    for (const { delivery } of inboxB.received) {
      expect(
        delivery.attempt,
        'messages held unsettled at close must come back with attempt 2; messages never delivered must arrive with attempt 1',
      ).toBe(held.has(decode(delivery.body)) ? 2 : 1)
      await delivery.ack()
    }
    expect(inboxB.count, 'nothing beyond the 15 unacked messages should be delivered to the new broker').toBe(
      15,
    )
  })

  test('an expired lease redelivers to another consumer; the stale holder cannot settle it', async (ctx) => {
    const q = h.queue()
    const a = await h.open()
    const b = await h.open()
    const lease = h.ms(1000)
    const inbox = new Inbox(soon)
    await consumeInto(a, q, inbox, { prefetch: 1, leaseMs: lease }, 'a')
    const before = Date.now()
    await a.publish(q, [{ body: encode('slow') }])
    const first = await inbox.next()
    if (!a.capabilities.leases) {
      expect(
        first.extend,
        'a broker with capabilities.leases false must not offer Delivery.extend',
      ).toBeUndefined()
      await first.ack()
      return ctx.skip('capabilities.leases is false: deliveries are held until settled or closed')
    }
    expect(typeof first.extend, 'a broker with capabilities.leases true must offer Delivery.extend').toBe(
      'function',
    )
    await consumeInto(b, q, inbox, { prefetch: 1, leaseMs: lease }, 'b')
    const second = await inbox.nextReceived(lease + soon)
    expect(second.by, 'after the lease ran out, the message must go to the other waiting consumer (b)').toBe(
      'b',
    )
    expect(second.at - before, 'the message was redelivered before its lease ran out').toBeGreaterThanOrEqual(
      lease - CLOCK_SLACK_MS,
    )
    expect(
      second.delivery.messageId,
      'the redelivery after an expired lease must have the same messageId',
    ).toBe(first.messageId)
    expect(second.delivery.attempt, 'the redelivery after an expired lease must have attempt 2').toBe(2)
    expect(
      decode(second.delivery.body),
      'the redelivery after an expired lease must have the same bytes',
    ).toBe('slow')
    // Too late: whatever a's ack answers, it must not remove b's delivery.
    await settleQuietly(first.ack())
    await second.delivery.nack()
    const third = await inbox.next()
    expect(
      third.messageId,
      "the stale holder's ack removed the message: the new holder's nack must still bring it back (same messageId)",
    ).toBe(first.messageId)
    expect(
      third.attempt,
      'after an expired lease and a nack, the message must come back with attempt 3',
    ).toBe(3)
    await third.ack()
  })

  test('extend keeps a long-held delivery from being redelivered', async (ctx) => {
    const q = h.queue()
    const a = await h.open()
    const b = await h.open()
    const lease = h.ms(1000)
    const inbox = new Inbox(soon)
    await consumeInto(a, q, inbox, { prefetch: 1, leaseMs: lease }, 'a')
    await a.publish(q, [{ body: encode('long') }])
    const held = await inbox.next()
    const extend = held.extend?.bind(held)
    if (!a.capabilities.leases || extend === undefined) {
      expect(
        a.capabilities.leases,
        'a delivery without extend must come from a broker with capabilities.leases false',
      ).toBe(false)
      expect(
        held.extend,
        'a broker with capabilities.leases false must not offer Delivery.extend',
      ).toBeUndefined()
      await held.ack()
      return ctx.skip('capabilities.leases is false: nothing to extend')
    }
    await consumeInto(b, q, inbox, { prefetch: 1, leaseMs: lease }, 'b')
    // Hold for 2.4 leases, extending every 0.6 lease.
    for (let i = 0; i < 4; i++) {
      await sleep(lease * 0.6)
      await extend(lease)
    }
    expect(inbox.count, 'redelivered while the lease was being extended').toBe(1)
    await held.ack()
    await a.publish(q, [{ body: encode('marker') }])
    const marker = await inbox.next()
    expect(
      decode(marker.body),
      'after the extended delivery was acked, the next delivery must be the new marker',
    ).toBe('marker')
    await marker.ack()
    expect(
      inbox.count,
      'the extended message was delivered twice: only it and the marker should have arrived',
    ).toBe(2)
  })
}
