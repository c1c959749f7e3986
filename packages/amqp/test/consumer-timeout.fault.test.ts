import { afterAll, describe, expect, it } from 'vitest'
import {
  BrokerPool,
  Collector,
  dec,
  enc,
  quietLogger,
  rabbitAvailable,
  rabbitmqctl,
  uniqueQueue,
} from './helpers.js'

const available = await rabbitAvailable()
const pool = new BrokerPool()

/**
 * RabbitMQ closes a channel whose delivery stays unacknowledged longer than `consumer_timeout`
 * (30 min by default). RabbitMQ 3.10 reads the setting when a channel opens and checks it on the
 * channel's tick (every `channel_tick_interval`, 60 s): the test shortens both while the
 * consumer's channel opens, so that the timeout fires in about two seconds, and only on channels
 * opened in that window (fault tests run alone, after the others).
 */
describe.runIf(available)('amqp consumer_timeout', () => {
  afterAll(() => pool.cleanup(), 60_000)

  it('a delivery held past consumer_timeout is not lost: logged, channel recovered, redelivered with attempt + 1', async () => {
    const q = uniqueQueue('amqp-ct')
    const logger = quietLogger()
    const broker = pool.broker({ logger, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } })
    await broker.stats(q) // connection and topology first: only the consumer's channel opens in the window
    const inbox = new Collector()
    try {
      try {
        await rabbitmqctl(
          'eval',
          'application:set_env(rabbit, consumer_timeout, 2000), application:set_env(rabbit, channel_tick_interval, 500).',
        )
        await broker.consume(q, inbox.handler, { prefetch: 1 })
      } finally {
        await rabbitmqctl('eval', 'application:set_env(rabbit, consumer_timeout, 1800000).')
      }
      await broker.publish(q, [{ body: enc('slow task') }])
      await inbox.waitFor(1)
      const first = inbox.items[0]!.delivery
      // The task runs longer than the timeout: RabbitMQ takes the channel (and the message) back.
      const warning = await logger.waitFor(/consumer_timeout/, 20_000)
      expect(warning).toContain(q)
      await inbox.waitFor(2, 10_000)
      const second = inbox.items[1]!.delivery
      expect(second.messageId).toBe(first.messageId)
      expect(second.attempt).toBe(2)
      expect(dec(second.body)).toBe('slow task')
      await first.ack() // the stale holder finishing late: does nothing, throws nothing
      await second.ack()
      expect((await broker.stats(q)).ready).toBe(0)
      expect(inbox.items).toHaveLength(2)
    } finally {
      await rabbitmqctl(
        'eval',
        'application:set_env(rabbit, consumer_timeout, 1800000), application:set_env(rabbit, channel_tick_interval, 60000).',
      )
    }
  }, 60_000)
})
