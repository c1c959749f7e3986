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
    expect(rest).toEqual([])
    expect(dead).toBeDefined()
    expect(dead!.queue).toBe(q)
    expect(dead!.reason).toBe('exhausted')
    expect(dead!.error).toEqual(error)
    expect(sameBytes(dead!.body, body)).toBe(true)
    expect(dead!.deadAt).toBeGreaterThanOrEqual(before - CLOCK_SLACK_MS)
    expect(dead!.deadAt).toBeLessThanOrEqual(after + CLOCK_SLACK_MS)
    const stats = await broker.stats(q)
    expect(stats.dead).toBe(1)
    expect(stats.ready).toBe(0)
    if (stats.inFlight !== undefined) expect(stats.inFlight).toBe(0)
  })

  test('listDeadLetters respects its limit', async () => {
    const broker = await h.open()
    const q = h.queue()
    await deadLetterAll(broker, q, ['a', 'b', 'c', 'd', 'e'], soon)
    expect(await broker.listDeadLetters(q, { limit: 2 })).toHaveLength(2)
    expect(await broker.listDeadLetters(q)).toHaveLength(5)
  })

  test('requeueDeadLetters puts them all back and they are delivered again', async () => {
    const broker = await h.open()
    const q = h.queue()
    await deadLetterAll(broker, q, ['x', 'y'], soon)
    expect(await broker.requeueDeadLetters(q)).toBe(2)
    expect(await broker.listDeadLetters(q)).toEqual([])
    const inbox = new Inbox(soon)
    await consumeInto(broker, q, inbox, { prefetch: 5 })
    await inbox.waitForCount(2)
    expect(inbox.received.map((r) => decode(r.delivery.body)).sort()).toEqual(['x', 'y'])
    for (const { delivery } of inbox.received) await delivery.ack()
    expect((await broker.stats(q)).dead).toBe(0)
  })

  test('requeueDeadLetters by id moves only those', async () => {
    const broker = await h.open()
    const q = h.queue()
    const ids = await deadLetterAll(broker, q, ['p', 'q', 'r'], soon)
    expect(await broker.requeueDeadLetters(q, [ids.get('q')!, 'no-such-id'])).toBe(1)
    const inbox = new Inbox(soon)
    await consumeInto(broker, q, inbox, { prefetch: 5 })
    const again = await inbox.next()
    expect(decode(again.body)).toBe('q')
    await again.ack()
    const left = await broker.listDeadLetters(q)
    expect(left.map((dead) => decode(dead.body)).sort()).toEqual(['p', 'r'])
    expect(inbox.count).toBe(1)
  })

  test('purgeDeadLetters deletes by id and all', async () => {
    const broker = await h.open()
    const q = h.queue()
    const ids = await deadLetterAll(broker, q, ['1', '2', '3'], soon)
    expect(await broker.purgeDeadLetters(q, [ids.get('2')!])).toBe(1)
    expect((await broker.listDeadLetters(q)).map((dead) => decode(dead.body)).sort()).toEqual(['1', '3'])
    expect(await broker.purgeDeadLetters(q)).toBe(2)
    expect(await broker.listDeadLetters(q)).toEqual([])
    expect((await broker.stats(q)).dead).toBe(0)
  })

  test('stats counts ready, delayed, inFlight and dead', async () => {
    const broker = await h.open()
    const q = h.queue()
    const canDelay = broker.capabilities.maxDelayMs >= 60_000
    await broker.publish(q, [{ body: encode('r1') }, { body: encode('r2') }, { body: encode('r3') }])
    if (canDelay) await broker.publish(q, [{ body: encode('d1'), delayMs: 60_000 }])
    let stats = await broker.stats(q)
    expect(stats.ready).toBe(3)
    if (stats.delayed !== undefined) expect(stats.delayed).toBe(canDelay ? 1 : 0)
    if (stats.inFlight !== undefined) expect(stats.inFlight).toBe(0)
    expect(stats.dead).toBe(0)
    const inbox = new Inbox(soon)
    await consumeInto(broker, q, inbox, { prefetch: 2 })
    await inbox.waitForCount(2)
    stats = await broker.stats(q)
    expect(stats.ready).toBe(1)
    if (stats.inFlight !== undefined) expect(stats.inFlight).toBe(2)
    await inbox.received[0]!.delivery.deadLetter({ reason: 'rejected' })
    await inbox.received[1]!.delivery.ack()
    await inbox.waitForCount(3)
    stats = await broker.stats(q)
    expect(stats.ready).toBe(0)
    if (stats.inFlight !== undefined) expect(stats.inFlight).toBe(1)
    expect(stats.dead).toBe(1)
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
    expect(await broker.purge(q)).toBe(canDelay ? 3 : 2)
    const stats = await broker.stats(q)
    expect(stats.ready).toBe(0)
    if (stats.delayed !== undefined) expect(stats.delayed).toBe(0)
    if (stats.inFlight !== undefined) expect(stats.inFlight).toBe(1)
    expect(stats.dead).toBe(1)
    // The in-flight delivery survived the purge and still settles.
    await byBody.get('held')!.nack()
    const inbox2 = new Inbox(soon)
    await consumeInto(broker, q, inbox2, { prefetch: 5 })
    const back = await inbox2.next()
    expect(decode(back.body)).toBe('held')
    await back.ack()
    expect(inbox2.count).toBe(1)
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
