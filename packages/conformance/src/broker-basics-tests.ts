import { expect } from 'vitest'
import type { BrokerSuiteContext } from './harness.js'
import { consumeInto, encode, expectCode, Inbox } from './helpers.js'

/**
 * Runs first. Many later tests read `stats()` to check their outcome; when `stats` itself is
 * wrong they all fail with numbers that point nowhere. This test names the culprit once.
 */
export function registerBasicsTests({ test, h, soon }: BrokerSuiteContext): void {
  test('stats works (checked first: many tests below read it)', async () => {
    const broker = await h.open()
    const q = h.queue()
    const empty = await broker.stats(q)
    const broken = 'stats() is broken, so tests that read it below fail too: fix stats first.'
    expect(empty.ready, `${broken} ready of a never-used queue`).toBe(0)
    expect(empty.dead, `${broken} dead of a never-used queue`).toBe(0)
    await broker.publish(q, [{ body: encode('a') }, { body: encode('b') }])
    const two = await broker.stats(q)
    expect(two.ready, `${broken} ready after publishing 2`).toBe(2)
    if (two.inFlight !== undefined) expect(two.inFlight, `${broken} inFlight with nothing taken`).toBe(0)
    const inbox = new Inbox(soon)
    await consumeInto(broker, q, inbox, { prefetch: 1 })
    const d = await inbox.next()
    const taken = await broker.stats(q)
    expect(taken.ready, `${broken} ready after 1 of 2 was taken`).toBe(1)
    if (taken.inFlight !== undefined) expect(taken.inFlight, `${broken} inFlight after 1 was taken`).toBe(1)
    await d.ack()
    await (await inbox.next()).ack()
    const done = await broker.stats(q)
    expect(done.ready, `${broken} ready after both were acked`).toBe(0)
    if (done.inFlight !== undefined) expect(done.inFlight, `${broken} inFlight after both were acked`).toBe(0)
  })

  test('extend after the delivery settled resolves and does nothing', async (ctx) => {
    const broker = await h.open()
    const q = h.queue()
    const inbox = new Inbox(soon)
    await consumeInto(broker, q, inbox, { prefetch: 2 })
    await broker.publish(q, [{ body: encode('acked') }, { body: encode('dead') }])
    const acked = await inbox.next()
    const dead = await inbox.next()
    if (acked.extend === undefined) {
      expect(broker.capabilities.leases, 'a broker with leases must offer Delivery.extend').toBe(false)
      await acked.ack()
      await dead.ack()
      return ctx.skip('capabilities.leases is false: no extend to call')
    }
    await acked.ack()
    await dead.deadLetter({ reason: 'rejected' })
    // One rule for every store: a late extend (a lease timer that fired as the task finished) is
    // harmless, never a TypeError or a resurrection of the message.
    await expect(acked.extend(10_000), 'extend after ack').resolves.toBeUndefined()
    await expect(dead.extend!(10_000), 'extend after deadLetter').resolves.toBeUndefined()
    const stats = await broker.stats(q)
    expect(stats.ready, 'a late extend put a settled message back').toBe(0)
    if (stats.inFlight !== undefined) expect(stats.inFlight, 'a late extend left a message in flight').toBe(0)
    expect(stats.dead, 'the dead letter is still there, once').toBe(1)
  })

  test('settling a delivery after its broker closed rejects with ERR_CLOSED; the message comes back', async () => {
    const q = h.queue()
    const a = await h.open()
    const inbox = new Inbox(soon)
    await consumeInto(a, q, inbox, { prefetch: 3 })
    await a.publish(q, [{ body: encode('1') }, { body: encode('2') }, { body: encode('3') }])
    await inbox.waitForCount(3)
    const [one, two, three] = inbox.received.map((r) => r.delivery)
    await h.close(a)
    await expectCode(() => one!.ack(), 'ERR_CLOSED', 'ack after close')
    await expectCode(() => two!.nack(), 'ERR_CLOSED', 'nack after close')
    await expectCode(() => three!.deadLetter({ reason: 'rejected' }), 'ERR_CLOSED', 'deadLetter after close')
    const b = await h.open()
    const again = new Inbox(soon)
    await consumeInto(b, q, again, { prefetch: 3 })
    await again.waitForCount(3)
    for (const { delivery } of again.received) {
      expect(delivery.attempt, 'a message given back at close is delivered again with attempt + 1').toBe(2)
      await delivery.ack()
    }
    expect((await b.stats(q)).dead, 'nothing was dead-lettered after close').toBe(0)
  })
}
