import type { Delivery } from '@errand/core'
import { expect } from 'vitest'
import type { BrokerSuiteContext } from './harness.js'
import { consumeInto, decode, encode, Inbox, settleQuietly } from './helpers.js'

/** How `call` ended: `resolved`, or the error it rejected (or threw) with. */
async function ending(call: () => Promise<unknown>): Promise<'resolved' | { error: unknown }> {
  try {
    await call()
    return 'resolved'
  } catch (error) {
    return { error }
  }
}

/** `Delivery.lost`: the store tells the holder when it took the message back (optional). */
export function registerLostTests({ test, h, soon }: BrokerSuiteContext): void {
  test('a delivery whose lease ran out and went to another consumer is signalled lost (ERR_LOST)', async (ctx) => {
    const q = h.queue()
    const a = await h.open()
    const b = await h.open()
    const lease = h.ms(300)
    const inboxA = new Inbox(soon)
    await consumeInto(a, q, inboxA, { prefetch: 1, leaseMs: lease }, 'a')
    await a.publish(q, [{ body: encode('taken back') }])
    const first = await inboxA.next()
    const lost = first.lost
    if (!a.capabilities.leases || lost === undefined) {
      await first.ack()
      return ctx.skip(
        a.capabilities.leases
          ? 'deliveries of this broker have no lost signal (Delivery.lost is optional)'
          : 'capabilities.leases is false: no lease to lose (a store that can lose a delivery otherwise tests lost in its own tests)',
      )
    }
    expect(lost.aborted, 'a delivery just received must not be signalled lost').toBe(false)

    // a does not extend: once the lease ran out, the waiting consumer b gets the message.
    const inboxB = new Inbox(soon)
    await consumeInto(b, q, inboxB, { prefetch: 1 }, 'b')
    const second = await inboxB.next(lease + soon)
    expect(second.messageId, 'b must receive the message whose lease a let run out').toBe(first.messageId)
    expect(second.attempt, 'the message taken back from a must come to b with attempt 2').toBe(2)
    expect(second.lost?.aborted ?? false, "b's delivery must not be signalled lost").toBe(false)

    // The store may notice at once, or only when a next tries to extend: either way extend must
    // not fail with anything but ERR_LOST, and afterwards the signal must be aborted.
    if (!lost.aborted) {
      const extended = await ending(() => (first as Required<Pick<Delivery, 'extend'>>).extend(lease))
      if (extended !== 'resolved') {
        expect(
          (extended.error as { code?: unknown } | undefined)?.code,
          `extend of a delivery whose message went to another consumer may only reject with ERR_LOST; it rejected with ${String(extended.error)}`,
        ).toBe('ERR_LOST')
      }
    }
    expect(
      lost.aborted,
      "a's delivery must be signalled lost once its message went to b (at the latest when a tries to extend)",
    ).toBe(true)
    const reason = lost.reason as { code?: unknown; message?: unknown } | undefined
    expect(reason, 'Delivery.lost must be aborted with an Error saying why').toBeInstanceOf(Error)
    expect(reason?.code, `the lost reason must have the code ERR_LOST; got ${String(reason)}`).toBe(
      'ERR_LOST',
    )
    expect(String(reason?.message ?? '').length, 'the lost reason must say why').toBeGreaterThan(0)

    // A lost delivery no longer counts against a's prefetch (1): the next message can come to a.
    await a.publish(q, [{ body: encode('next') }])
    const next = await inboxA.next()
    expect(
      decode(next.body),
      "after a's delivery was lost, a (prefetch 1) must receive the next message: the lost one no longer counts",
    ).toBe('next')
    await next.ack()

    // Settling the lost delivery does nothing: b still holds the message.
    await settleQuietly(first.ack())
    await settleQuietly(first.nack())
    expect(lost.aborted, 'a lost delivery stays lost').toBe(true)
    await second.ack()
    const stats = await b.stats(q)
    expect(stats.ready, "a's stale nack put the message back: nothing may be ready").toBe(0)
    if (stats.inFlight !== undefined) {
      expect(stats.inFlight, 'after b acked, nothing may be left in flight').toBe(0)
    }
    expect(stats.dead, 'nothing may be dead-lettered').toBe(0)
    expect(inboxB.count, "a's stale settle brought the message back to b").toBe(1)
    expect(inboxA.count, "a's stale settle brought the message back to a").toBe(2)
  })
}
