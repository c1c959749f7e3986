import type { Broker, Delivery } from '@errand/core'
import { expect } from 'vitest'
import type { BrokerSuiteContext } from './harness.js'
import { CLOCK_SLACK_MS, consumeInto, decode, encode, expectCode, Inbox, sameBytes } from './helpers.js'

/** Publish `bodies`, receive them all and dead-letter each as `rejected`; returns ids by body. */
async function deadLetterAll(
  broker: Broker,
  queue: string,
  bodies: readonly string[],
  soon: number,
): Promise<Map<string, string>> {
  const inbox = new Inbox(soon)
  const consumer = await consumeInto(broker, queue, inbox, { prefetch: bodies.length })
  await broker.publish(
    queue,
    bodies.map((body) => ({ body: encode(body) })),
  )
  await inbox.waitForCount(bodies.length)
  await consumer.cancel()
  for (const { delivery } of inbox.received) await delivery.deadLetter({ reason: 'rejected' })
  const listed = await broker.listDeadLetters(queue)
  const ids = new Map(listed.map((dead) => [decode(dead.body), dead.id]))
  expect([...ids.keys()].sort(), 'listDeadLetters right after deadLetter resolved').toEqual(
    [...bodies].sort(),
  )
  return ids
}

/** Dead letters, stats, purge and the closed state. */
export function registerAdminTests({ test, h, soon }: BrokerSuiteContext): void {
  test('deadLetter moves a message with its reason, error and exact bytes', async () => {
    const broker = await h.open()
    const q = h.queue()
    const body = Uint8Array.from([0xff, 0x00, 0xfe, 0x7b, 0x22, 0x80])
    const inbox = new Inbox(soon)
    await consumeInto(broker, q, inbox, { prefetch: 1 })
    await broker.publish(q, [{ body }])
    const delivery = await inbox.next()
    const error = { name: 'TypeError', message: 'boom ✗', code: 'ERR_BOOM' }
    const before = Date.now()
    await delivery.deadLetter({ reason: 'exhausted', error })
    const after = Date.now()
    const [dead, ...rest] = await broker.listDeadLetters(q)
    expect(
      rest,
      'exactly one dead letter expected after one deadLetter(): listDeadLetters returned more',
    ).toEqual([])
    expect(dead, 'listDeadLetters must list the message that deadLetter() moved').toBeDefined()
    expect(dead!.queue, "a dead letter's queue must be the queue the message came from").toBe(q)
    expect(dead!.reason, 'a dead letter must keep the reason given to deadLetter()').toBe('exhausted')
    expect(
      dead!.error,
      'a dead letter must keep the error given to deadLetter(), as given (name, message, code)',
    ).toEqual(error)
    expect(sameBytes(dead!.body, body), "a dead letter's body must be the original bytes, untouched").toBe(
      true,
    )
    expect(dead!.deadAt, "a dead letter's deadAt is before the deadLetter() call").toBeGreaterThanOrEqual(
      before - CLOCK_SLACK_MS,
    )
    expect(dead!.deadAt, "a dead letter's deadAt is after deadLetter() resolved").toBeLessThanOrEqual(
      after + CLOCK_SLACK_MS,
    )
    const stats = await broker.stats(q)
    expect(stats.dead, 'stats().dead must count the dead-lettered message').toBe(1)
    expect(stats.ready, 'a dead-lettered message must not be ready any more').toBe(0)
    if (stats.inFlight !== undefined)
      expect(stats.inFlight, 'a dead-lettered message must not be in flight any more').toBe(0)
  })

  test('listDeadLetters respects its limit', async () => {
    const broker = await h.open()
    const q = h.queue()
    await deadLetterAll(broker, q, ['a', 'b', 'c', 'd', 'e'], soon)
    expect(
      await broker.listDeadLetters(q, { limit: 2 }),
      'listDeadLetters({ limit: 2 }) must return at most 2 entries (5 exist)',
    ).toHaveLength(2)
    expect(
      await broker.listDeadLetters(q),
      'listDeadLetters() without a limit must return all 5 dead letters (default limit 100)',
    ).toHaveLength(5)
  })

  test('requeueDeadLetters puts them all back and they are delivered again', async () => {
    const broker = await h.open()
    const q = h.queue()
    await deadLetterAll(broker, q, ['x', 'y'], soon)
    expect(
      await broker.requeueDeadLetters(q),
      'requeueDeadLetters(queue) must return how many it moved (2)',
    ).toBe(2)
    expect(
      await broker.listDeadLetters(q),
      'after requeueDeadLetters(queue), the dead letters must be empty',
    ).toEqual([])
    const inbox = new Inbox(soon)
    await consumeInto(broker, q, inbox, { prefetch: 5 })
    await inbox.waitForCount(2)
    expect(
      inbox.received.map((r) => decode(r.delivery.body)).sort(),
      'both requeued dead letters must be delivered again',
    ).toEqual(['x', 'y'])
    for (const { delivery } of inbox.received) await delivery.ack()
    expect((await broker.stats(q)).dead, 'after requeueing and acking, stats().dead must be 0').toBe(0)
  })

  test('requeueDeadLetters by id moves only those', async () => {
    const broker = await h.open()
    const q = h.queue()
    const ids = await deadLetterAll(broker, q, ['p', 'q', 'r'], soon)
    expect(
      await broker.requeueDeadLetters(q, [ids.get('q')!, 'no-such-id']),
      'requeueDeadLetters by id must move only the known id and ignore an unknown one (count 1)',
    ).toBe(1)
    const inbox = new Inbox(soon)
    await consumeInto(broker, q, inbox, { prefetch: 5 })
    const again = await inbox.next()
    expect(decode(again.body), 'the dead letter requeued by id must be the one delivered').toBe('q')
    await again.ack()
    const left = await broker.listDeadLetters(q)
    expect(
      left.map((dead) => decode(dead.body)).sort(),
      'the dead letters not named in requeueDeadLetters must stay dead',
    ).toEqual(['p', 'r'])
    expect(inbox.count, 'only the dead letter requeued by id may be delivered').toBe(1)
  })

  test('purgeDeadLetters deletes by id and all', async () => {
    const broker = await h.open()
    const q = h.queue()
    const ids = await deadLetterAll(broker, q, ['1', '2', '3'], soon)
    expect(
      await broker.purgeDeadLetters(q, [ids.get('2')!]),
      'purgeDeadLetters by id must return how many it deleted (1)',
    ).toBe(1)
    expect(
      (await broker.listDeadLetters(q)).map((dead) => decode(dead.body)).sort(),
      'purgeDeadLetters by id must delete only that entry',
    ).toEqual(['1', '3'])
    expect(
      await broker.purgeDeadLetters(q),
      'purgeDeadLetters(queue) without ids must delete the rest (2)',
    ).toBe(2)
    expect(
      await broker.listDeadLetters(q),
      'after purgeDeadLetters(queue), the dead letters must be empty',
    ).toEqual([])
    expect((await broker.stats(q)).dead, 'after purgeDeadLetters(queue), stats().dead must be 0').toBe(0)
  })

  test('stats counts ready, delayed, inFlight and dead', async () => {
    const broker = await h.open()
    const q = h.queue()
    const canDelay = broker.capabilities.maxDelayMs >= 60_000
    await broker.publish(q, [{ body: encode('r1') }, { body: encode('r2') }, { body: encode('r3') }])
    if (canDelay) await broker.publish(q, [{ body: encode('d1'), delayMs: 60_000 }])
    let stats = await broker.stats(q)
    expect(stats.ready, 'stats().ready must count 3 published messages nobody took').toBe(3)
    if (stats.delayed !== undefined)
      expect(
        stats.delayed,
        'stats().delayed must count the message published with a 60 s delay (0 where maxDelayMs is under a minute)',
      ).toBe(canDelay ? 1 : 0)
    if (stats.inFlight !== undefined)
      expect(stats.inFlight, 'stats().inFlight must be 0 before anything is consumed').toBe(0)
    expect(stats.dead, 'stats().dead must be 0 before anything is dead-lettered').toBe(0)
    const inbox = new Inbox(soon)
    await consumeInto(broker, q, inbox, { prefetch: 2 })
    await inbox.waitForCount(2)
    stats = await broker.stats(q)
    expect(stats.ready, 'stats().ready after a consumer with prefetch 2 took 2 of 3 must be 1').toBe(1)
    if (stats.inFlight !== undefined)
      expect(stats.inFlight, 'stats().inFlight must count the 2 deliveries held unsettled').toBe(2)
    await inbox.received[0]!.delivery.deadLetter({ reason: 'rejected' })
    await inbox.received[1]!.delivery.ack()
    await inbox.waitForCount(3)
    stats = await broker.stats(q)
    expect(stats.ready, 'stats().ready must be 0 once all 3 were taken').toBe(0)
    if (stats.inFlight !== undefined)
      expect(
        stats.inFlight,
        'stats().inFlight must count the 1 delivery still held (1 acked, 1 dead-lettered)',
      ).toBe(1)
    expect(stats.dead, 'stats().dead must count the dead-lettered delivery').toBe(1)
    await inbox.received[2]!.delivery.ack()
  })

  test('purge removes ready and delayed messages, not in-flight or dead ones', async () => {
    const broker = await h.open()
    const q = h.queue()
    const canDelay = broker.capabilities.maxDelayMs >= 60_000
    const inbox = new Inbox(soon)
    const consumer = await consumeInto(broker, q, inbox, { prefetch: 2 })
    await broker.publish(q, [{ body: encode('held') }, { body: encode('dead') }])
    await inbox.waitForCount(2)
    await consumer.cancel()
    const byBody = new Map<string, Delivery>(inbox.received.map((r) => [decode(r.delivery.body), r.delivery]))
    await byBody.get('dead')!.deadLetter({ reason: 'rejected' })
    await broker.publish(q, [{ body: encode('r1') }, { body: encode('r2') }])
    if (canDelay) await broker.publish(q, [{ body: encode('later'), delayMs: 60_000 }])
    expect(
      await broker.purge(q),
      'purge must return how many ready and delayed messages it removed (not the in-flight or dead one)',
    ).toBe(canDelay ? 3 : 2)
    const stats = await broker.stats(q)
    expect(stats.ready, 'purge must leave no ready message').toBe(0)
    if (stats.delayed !== undefined) expect(stats.delayed, 'purge must leave no delayed message').toBe(0)
    if (stats.inFlight !== undefined)
      expect(stats.inFlight, 'purge must not touch the in-flight delivery').toBe(1)
    expect(stats.dead, 'purge must not touch the dead letters').toBe(1)
    // The in-flight delivery survived the purge and still settles.
    await byBody.get('held')!.nack()
    const inbox2 = new Inbox(soon)
    await consumeInto(broker, q, inbox2, { prefetch: 5 })
    const back = await inbox2.next()
    expect(decode(back.body), 'the in-flight delivery that survived the purge, nacked, must come back').toBe(
      'held',
    )
    await back.ack()
    expect(
      inbox2.count,
      'only the held message may come back after the purge: a purged one was delivered',
    ).toBe(1)
  })

  test('calls after close reject with ERR_CLOSED', async () => {
    const broker = await h.open()
    const q = h.queue()
    await h.close(broker)
    const calls: [string, () => Promise<unknown>][] = [
      ['connect', () => broker.connect()],
      ['publish', () => broker.publish(q, [{ body: encode('x') }])],
      ['consume', () => broker.consume(q, () => {}, { prefetch: 1 })],
      ['stats', () => broker.stats(q)],
      ['purge', () => broker.purge(q)],
      ['listDeadLetters', () => broker.listDeadLetters(q)],
      ['requeueDeadLetters', () => broker.requeueDeadLetters(q)],
      ['purgeDeadLetters', () => broker.purgeDeadLetters(q)],
    ]
    for (const [name, call] of calls) await expectCode(call, 'ERR_CLOSED', name)
  })
}
