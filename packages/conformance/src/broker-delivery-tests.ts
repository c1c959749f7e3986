import type { Broker } from '@errand/core'
import { expect } from 'vitest'
import type { BrokerSuiteContext } from './harness.js'
import { CLOCK_SLACK_MS, consumeInto, decode, encode, expectCode, Inbox, sameBytes } from './helpers.js'

const MiB = 1024 * 1024

function patterned(size: number): Uint8Array {
  const bytes = new Uint8Array(size)
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + 7) & 0xff
  return bytes
}

async function expectEmpty(broker: Broker, queue: string): Promise<void> {
  const stats = await broker.stats(queue)
  expect(stats.ready, 'the queue should be empty, but stats().ready counts a message still waiting').toBe(0)
  if (stats.inFlight !== undefined)
    expect(
      stats.inFlight,
      'the queue should be empty, but stats().inFlight counts a message still held by a consumer',
    ).toBe(0)
  if (stats.delayed !== undefined)
    expect(
      stats.delayed,
      'the queue should be empty, but stats().delayed counts a message still scheduled',
    ).toBe(0)
}

/** Publish, deliver, ack, nack and settle-once semantics. */
export function registerDeliveryTests({ test, h, soon }: BrokerSuiteContext): void {
  test('bytes round trip: unicode, empty, binary and a large body', async () => {
    const broker = await h.open()
    const q = h.queue()
    const large = patterned(Math.min(broker.capabilities.maxMessageBytes, MiB))
    const unicode = encode('héllo wörld — 你好 🌍 \u0000 end')
    const binary = Uint8Array.from({ length: 256 }, (_, i) => i)
    const bodies = [new Uint8Array(0), unicode, binary, large].sort((a, b) => a.byteLength - b.byteLength)
    await broker.publish(q, [{ body: bodies[0]! }, { body: bodies[1]! }, { body: bodies[2]! }])
    await broker.publish(q, [{ body: bodies[3]! }])
    const inbox = new Inbox(soon)
    await consumeInto(broker, q, inbox, { prefetch: 4 })
    await inbox.waitForCount(4)
    const got = inbox.received.map((r) => r.delivery).sort((a, b) => a.body.byteLength - b.body.byteLength)
    for (const [i, delivery] of got.entries()) {
      expect(
        delivery.body.byteLength,
        `body ${i}: a delivery's body must have exactly the length that was published`,
      ).toBe(bodies[i]!.byteLength)
      expect(sameBytes(delivery.body, bodies[i]!), `body ${i} differs`).toBe(true)
      expect(delivery.attempt, 'a message delivered for the first time must have attempt 1').toBe(1)
      expect(typeof delivery.messageId, 'Delivery.messageId must be a string').toBe('string')
      expect(delivery.messageId.length, 'Delivery.messageId must not be empty').toBeGreaterThan(0)
      await delivery.ack()
    }
    expect(
      new Set(got.map((d) => d.messageId)).size,
      'every message published must get its own messageId (4 messages, 4 distinct ids)',
    ).toBe(4)
  })

  test('a body over maxMessageBytes is refused with ERR_PAYLOAD_TOO_LARGE', async (ctx) => {
    const broker = await h.open()
    const limit = broker.capabilities.maxMessageBytes
    if (limit > 64 * MiB) ctx.skip(`maxMessageBytes ${limit} is too large to allocate in a test`)
    const q = h.queue()
    await expectCode(
      () => broker.publish(q, [{ body: new Uint8Array(limit + 1) }]),
      'ERR_PAYLOAD_TOO_LARGE',
      'publish over maxMessageBytes',
    )
    expect(
      (await broker.stats(q)).ready,
      'a publish refused as too large must store nothing (ready should stay 0)',
    ).toBe(0)
  })

  test('publishing an empty batch resolves', async () => {
    const broker = await h.open()
    await broker.publish(h.queue(), [])
  })

  test('ack removes the message', async () => {
    const q = h.queue()
    const a = await h.open()
    const inboxA = new Inbox(soon)
    await consumeInto(a, q, inboxA, { prefetch: 1 })
    await a.publish(q, [{ body: encode('once') }])
    await (await inboxA.next()).ack()
    await expectEmpty(a, q)
    await h.close(a)
    // A new connection sees only what is published next.
    const b = await h.open()
    const inboxB = new Inbox(soon)
    await consumeInto(b, q, inboxB, { prefetch: 10 })
    await b.publish(q, [{ body: encode('marker') }])
    const marker = await inboxB.next()
    expect(
      decode(marker.body),
      'after an ack and a reconnect, the next delivery must be the new marker, not the acked message again',
    ).toBe('marker')
    await marker.ack()
    expect(
      inboxB.count,
      'only the marker should be delivered on the new connection: the acked message came back',
    ).toBe(1)
    await expectEmpty(b, q)
  })

  test('nack redelivers with attempt + 1 and the same id and bytes', async () => {
    const broker = await h.open()
    const q = h.queue()
    const inbox = new Inbox(soon)
    await consumeInto(broker, q, inbox, { prefetch: 1 })
    await broker.publish(q, [{ body: encode('again') }])
    const first = await inbox.next()
    expect(first.attempt, 'a message delivered for the first time must have attempt 1').toBe(1)
    await first.nack()
    const second = await inbox.next()
    expect(second.attempt, 'after one nack, the message must come back with attempt 2').toBe(2)
    expect(second.messageId, 'a nacked message must come back with the same messageId').toBe(first.messageId)
    expect(decode(second.body), 'a nacked message must come back with the same bytes').toBe('again')
    await second.nack()
    const third = await inbox.next()
    expect(third.attempt, 'after two nacks, the message must come back with attempt 3').toBe(3)
    await third.ack()
    await expectEmpty(broker, q)
  })

  test('nack with delayMs redelivers no earlier than the delay', async () => {
    const broker = await h.open()
    const q = h.queue()
    const delay = Math.min(h.ms(1000), broker.capabilities.maxDelayMs)
    const inbox = new Inbox(soon)
    await consumeInto(broker, q, inbox, { prefetch: 1 })
    await broker.publish(q, [{ body: encode('later') }])
    const first = await inbox.next()
    if (broker.capabilities.maxDelayMs === 0) {
      await expectCode(
        () => first.nack({ delayMs: 1 }),
        'ERR_NOT_SUPPORTED',
        'nack with a delay over maxDelayMs',
      )
      await first.ack()
      return
    }
    const before = Date.now()
    await first.nack({ delayMs: delay })
    const again = await inbox.nextReceived(delay + soon)
    expect(
      again.at - before,
      'a message nacked with delayMs was redelivered before the delay had passed',
    ).toBeGreaterThanOrEqual(delay - CLOCK_SLACK_MS)
    expect(
      again.at - before,
      'a message nacked with delayMs was redelivered more than 500 ms (scaled) after the delay',
    ).toBeLessThanOrEqual(delay + h.ms(500))
    expect(again.delivery.attempt, 'a message nacked with delayMs must come back with attempt 2').toBe(2)
    await again.delivery.ack()
  })

  test('settling twice is harmless: the second call does nothing', async () => {
    const broker = await h.open()
    const q = h.queue()
    const inbox = new Inbox(soon)
    await consumeInto(broker, q, inbox, { prefetch: 5 })
    await broker.publish(q, [{ body: encode('acked') }, { body: encode('nacked') }, { body: encode('dead') }])
    await inbox.waitForCount(3)
    const byBody = new Map(inbox.received.map((r) => [decode(r.delivery.body), r.delivery]))
    const acked = byBody.get('acked')!
    await acked.ack()
    await acked.ack()
    await acked.nack()
    const nacked = byBody.get('nacked')!
    await nacked.nack()
    await nacked.ack()
    await inbox.waitForCount(4)
    const again = inbox.received[3]!.delivery
    expect(
      decode(again.body),
      'the message redelivered after nack-then-ack must be the nacked one (the ack after nack must not remove it)',
    ).toBe('nacked')
    expect(again.attempt, 'the nacked message must come back once, with attempt 2').toBe(2)
    await again.ack()
    const dead = byBody.get('dead')!
    await dead.deadLetter({ reason: 'rejected' })
    await dead.deadLetter({ reason: 'rejected' })
    await dead.ack()
    expect(
      (await broker.listDeadLetters(q)).length,
      'a message dead-lettered twice (then acked) must be in the dead letters exactly once',
    ).toBe(1)
    expect(
      inbox.count,
      'settling twice redelivered something: only the nacked message should come back (3 + 1 deliveries)',
    ).toBe(4)
    await expectEmpty(broker, q)
  })
}
