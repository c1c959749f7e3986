import type { Broker } from '@errand/core'
import { expect } from 'vitest'
import type { BrokerSuiteContext } from './harness.js'
import { consumeInto, decode, encode, Inbox, sleep, withTimeout } from './helpers.js'

/** How a call ended: `resolved`, `rejected: <error>`, or a timeout naming the bound. */
async function outcome(call: Promise<unknown>, ms: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`still pending after ${Math.round(ms)} ms`), ms)
  })
  try {
    return await Promise.race([
      call.then(
        () => 'resolved',
        (err: unknown) => `rejected: ${String(err)}`,
      ),
      late,
    ])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Resolves once `broker` answers `stats(queue)` again after a restore (it reconnects by itself;
 * how soon is the store client's business). Only a readiness probe: what the test checks comes
 * after it.
 */
async function untilAnswering(broker: Broker, queue: string, ms: number): Promise<void> {
  const end = Date.now() + ms
  let last: unknown
  while (Date.now() < end) {
    try {
      await withTimeout(broker.stats(queue), Math.max(1, end - Date.now()), 'stats')
      return
    } catch (err) {
      last = err
      await sleep(50)
    }
  }
  throw new Error(
    `the outage broker did not answer stats() within ${Math.round(ms)} ms of restore(): ${String(last)}`,
  )
}

/** Failures of the store under a settle (only with `options.outage`). */
export function registerOutageTests({ test, h, soon, outage }: BrokerSuiteContext): void {
  if (outage === undefined) return

  test('a settle that failed while the store was unreachable can be called again, and then settles', async () => {
    const q = h.queue()
    const broker = await outage.open()
    const inbox = new Inbox(soon)
    await consumeInto(broker, q, inbox, { prefetch: 1 })
    await broker.publish(q, [{ body: encode('survivor') }])
    const delivery = await inbox.next()

    let during: string
    try {
      await outage.cut()
      during = await outcome(delivery.ack(), 2 * soon)
    } finally {
      await outage.restore()
    }
    expect(
      during.startsWith('rejected'),
      `ack() while the store was unreachable must reject (any error), so the caller knows the ` +
        `message is not settled; it ${during}. Bound the outage broker's timeouts if it waits.`,
    ).toBe(true)

    await untilAnswering(broker, q, 2 * soon)
    expect(
      await outcome(delivery.ack(), 2 * soon),
      'ack() called again after its failure, once the store answers: it must settle the message ' +
        '(a delivery that marked itself settled before the failed call would do nothing here)',
    ).toBe('resolved')

    const healthy = await h.open()
    const stats = await healthy.stats(q)
    expect(stats.ready, 'the message acked on the second try is back in the queue (ready)').toBe(0)
    if (stats.inFlight !== undefined) {
      expect(
        stats.inFlight,
        'the message acked on the second try is still in flight: the retried ack did not reach the store',
      ).toBe(0)
    }
    expect(stats.dead, 'the message acked on the second try was dead-lettered').toBe(0)

    // Closing gives back whatever its broker still holds: the acked message must not be among it.
    await outage.close(broker)
    expect(inbox.count, 'the acked message was redelivered to its own consumer').toBe(1)
    const after = new Inbox(soon)
    await consumeInto(healthy, q, after, { prefetch: 10 })
    await healthy.publish(q, [{ body: encode('marker') }])
    const first = await after.next()
    expect(
      decode(first.body),
      'the first delivery after the retried ack must be the new marker, not the acked message',
    ).toBe('marker')
    await first.ack()
    expect(after.count, 'the acked message came back alongside the marker').toBe(1)
  })

  test('a nack or deadLetter that failed while the store was unreachable can be called again, and then settles', async () => {
    const q = h.queue()
    const broker = await outage.open()
    const inbox = new Inbox(soon)
    await consumeInto(broker, q, inbox, { prefetch: 2 })
    await broker.publish(q, [{ body: encode('nacked') }, { body: encode('dead') }])
    await inbox.waitForCount(2)
    const byBody = new Map(inbox.received.map((r) => [decode(r.delivery.body), r.delivery]))
    const nacked = byBody.get('nacked')!
    const dead = byBody.get('dead')!

    let during: string[]
    try {
      await outage.cut()
      during = await Promise.all([
        outcome(nacked.nack(), 2 * soon),
        outcome(dead.deadLetter({ reason: 'rejected' }), 2 * soon),
      ])
    } finally {
      await outage.restore()
    }
    expect(
      during[0]!.startsWith('rejected'),
      `nack() while the store was unreachable must reject (any error); it ${during[0]}`,
    ).toBe(true)
    expect(
      during[1]!.startsWith('rejected'),
      `deadLetter() while the store was unreachable must reject (any error); it ${during[1]}`,
    ).toBe(true)

    await untilAnswering(broker, q, 2 * soon)
    expect(
      await outcome(nacked.nack(), 2 * soon),
      'nack() called again after its failure, once the store answers, must resolve',
    ).toBe('resolved')
    expect(
      await outcome(dead.deadLetter({ reason: 'rejected' }), 2 * soon),
      'deadLetter() called again after its failure, once the store answers, must resolve',
    ).toBe('resolved')

    // The consumer has a free slot again: the nacked message comes back to it, counted once.
    await inbox.waitForCount(3)
    const again = inbox.received[2]!.delivery
    expect(decode(again.body), 'the retried nack must bring the nacked message back').toBe('nacked')
    expect(
      again.attempt,
      'the message nacked on the second try must come back with attempt 2 (one more delivery)',
    ).toBe(2)
    await again.ack()

    const healthy = await h.open()
    const letters = await healthy.listDeadLetters(q)
    expect(
      letters.map((l) => [decode(l.body), l.reason]),
      'the retried deadLetter must leave exactly one dead letter, with its reason',
    ).toEqual([['dead', 'rejected']])
    const stats = await healthy.stats(q)
    expect(stats.ready, 'after the retried settles, nothing may be left ready').toBe(0)
    if (stats.inFlight !== undefined) {
      expect(
        stats.inFlight,
        'after the retried settles, nothing may be left in flight: a retry did not reach the store',
      ).toBe(0)
    }
    expect(inbox.count, 'only the nacked message may be delivered again').toBe(3)
  })
}
