import { expect } from 'vitest'
import type { BrokerSuiteContext } from './harness.js'
import { CLOCK_SLACK_MS, consumeInto, decode, encode, expectCode, Inbox } from './helpers.js'

const DAY = 24 * 60 * 60 * 1000

/** Delays and priorities, or their refusal where the capability is off. */
export function registerScheduleTests({ test, h, soon }: BrokerSuiteContext): void {
  test('delays: never early, on time', async () => {
    const broker = await h.open()
    const q = h.queue()
    const { maxDelayMs } = broker.capabilities
    if (maxDelayMs === 0) {
      await expectCode(
        () => broker.publish(q, [{ body: encode('x'), delayMs: 1 }]),
        'ERR_NOT_SUPPORTED',
        'publish with a delay on a broker with maxDelayMs 0',
      )
      return
    }
    const delays = [0, h.ms(200), h.ms(700), h.ms(1200)].map((d) => Math.min(d, maxDelayMs))
    const inbox = new Inbox(soon)
    await consumeInto(broker, q, inbox, { prefetch: 10 })
    const before = Date.now()
    await broker.publish(
      q,
      delays.map((delayMs, i) => ({ body: encode(String(i)), delayMs })),
    )
    await inbox.waitForCount(delays.length, Math.max(...delays) + soon)
    for (const { delivery, at } of inbox.received) {
      const delay = delays[Number(decode(delivery.body))]!
      const elapsed = at - before
      expect(elapsed, `delay ${delay} delivered early`).toBeGreaterThanOrEqual(delay - CLOCK_SLACK_MS)
      expect(elapsed, `delay ${delay} delivered late`).toBeLessThanOrEqual(delay + h.ms(500))
      await delivery.ack()
    }
  })

  test('delays: a short delay does not wait behind a longer one published earlier', async (ctx) => {
    const broker = await h.open()
    const q = h.queue()
    const long = h.ms(3000)
    const short = h.ms(300)
    if (broker.capabilities.maxDelayMs < long)
      return ctx.skip(`maxDelayMs ${broker.capabilities.maxDelayMs} < ${long}`)
    const inbox = new Inbox(soon)
    await consumeInto(broker, q, inbox, { prefetch: 10 })
    await broker.publish(q, [{ body: encode('long'), delayMs: long }])
    const before = Date.now()
    await broker.publish(q, [{ body: encode('short'), delayMs: short }])
    const first = await inbox.nextReceived(long)
    expect(
      decode(first.delivery.body),
      'a short delay published after a long one must be delivered first',
    ).toBe('short')
    expect(first.at - before, 'the short delay was delivered early').toBeGreaterThanOrEqual(
      short - CLOCK_SLACK_MS,
    )
    expect(
      first.at - before,
      'the short delay was delivered late (waited behind the longer delay?)',
    ).toBeLessThanOrEqual(short + h.ms(500))
    await first.delivery.ack()
  })

  test('delays: a delay over maxDelayMs is refused with ERR_NOT_SUPPORTED', async () => {
    const broker = await h.open()
    const q = h.queue()
    const over = broker.capabilities.maxDelayMs + 1
    await expectCode(
      () => broker.publish(q, [{ body: encode('x'), delayMs: over }]),
      'ERR_NOT_SUPPORTED',
      'publish with a delay of maxDelayMs + 1',
    )
    expect(
      (await broker.stats(q)).ready,
      'a publish refused for its delay must store nothing (ready should stay 0)',
    ).toBe(0)
  })

  test('delays: the longest delay is held, not delivered', async (ctx) => {
    const broker = await h.open()
    const q = h.queue()
    // 40 days is past what one setTimeout can wait (2^31 - 1 ms), a classic overflow to fire at once.
    const delayMs = Math.min(broker.capabilities.maxDelayMs, 40 * DAY)
    if (delayMs < h.ms(60_000)) ctx.skip(`maxDelayMs ${broker.capabilities.maxDelayMs} is under a minute`)
    await broker.publish(q, [{ body: encode('far'), delayMs }])
    const stats = await broker.stats(q)
    expect(stats.ready, 'a message with the longest delay must not be ready').toBe(0)
    if (stats.delayed !== undefined)
      expect(stats.delayed, 'stats().delayed must count the message with the longest delay').toBe(1)
    const inbox = new Inbox(soon)
    await consumeInto(broker, q, inbox, { prefetch: 10 })
    await broker.publish(q, [{ body: encode('marker') }])
    const marker = await inbox.next()
    expect(
      decode(marker.body),
      'the first delivery must be the marker: the longest delay was delivered at once (timer overflow?)',
    ).toBe('marker')
    await marker.ack()
    expect(inbox.count, 'only the marker may be delivered: the longest delay was delivered').toBe(1)
    expect(await broker.purge(q), 'purge must remove the delayed message (count 1)').toBe(1)
  })

  test('priorities: higher first, or refused when maxPriority is 0', async () => {
    const broker = await h.open()
    const q = h.queue()
    const { maxPriority } = broker.capabilities
    await expectCode(
      () => broker.publish(q, [{ body: encode('x'), priority: maxPriority + 1 }]),
      'ERR_NOT_SUPPORTED',
      `publish with priority ${maxPriority + 1}`,
    )
    if (maxPriority === 0) {
      await broker.publish(q, [{ body: encode('zero'), priority: 0 }])
      expect(
        (await broker.stats(q)).ready,
        'with maxPriority 0, priority 0 must be accepted and stored',
      ).toBe(1)
      return
    }
    // Published while no one consumes; low first so that FIFO alone would get it wrong.
    await broker.publish(
      q,
      Array.from({ length: 3 }, () => ({ body: encode('low'), priority: 0 })),
    )
    if (maxPriority > 1) await broker.publish(q, [{ body: encode('mid'), priority: 1 }])
    await broker.publish(q, [{ body: encode('high'), priority: maxPriority }])
    const inbox = new Inbox(soon)
    await consumeInto(broker, q, inbox, { prefetch: 1 })
    const order: string[] = []
    const total = maxPriority > 1 ? 5 : 4
    for (let i = 0; i < total; i++) {
      const delivery = await inbox.next()
      order.push(decode(delivery.body))
      await delivery.ack()
    }
    const expected = maxPriority > 1 ? ['high', 'mid', 'low', 'low', 'low'] : ['high', 'low', 'low', 'low']
    expect(order, 'deliveries must come highest priority first, in FIFO order within a priority').toEqual(
      expected,
    )
  })
}
