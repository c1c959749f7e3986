import { type Broker, createApp } from '@errand/core'
import { afterAll, afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from 'vitest'
import { createBroker } from '../src/index.js'
import {
  AMQP_URL,
  BrokerPool,
  enc,
  quietLogger,
  rabbitAvailable,
  TEST_QUEUE_EXPIRES_MS,
  uniqueQueue,
} from './helpers.js'

const available = await rabbitAvailable()
const pool = new BrokerPool()
const URL_FOR_TESTS = `${AMQP_URL}?queueExpiresMs=${TEST_QUEUE_EXPIRES_MS}`
const SECRET = 'hunter2-do-not-print'

/**
 * Make `broker` log a line of its own: a delivery handler that throws is reported by the
 * adapter (the message carries a credential, which must come out masked).
 */
async function provokeLine(broker: Broker): Promise<void> {
  const q = uniqueQueue('amqp-log')
  pool.queues.add(q)
  await broker.consume(
    q,
    (d) => {
      void d.ack()
      throw new Error(`handler blew up at amqp://app:${SECRET}@rabbit.example`)
    },
    { prefetch: 1 },
  )
  await broker.publish(q, [{ body: enc('x') }])
}

describe.runIf(available)('amqp: logging', () => {
  afterAll(() => pool.cleanup(), 60_000)
  const methods = ['log', 'info', 'warn', 'error', 'debug'] as const
  let spies: MockInstance[] = []
  beforeEach(() => {
    spies = methods.map((m) => vi.spyOn(console, m))
  })
  afterEach(() => {
    for (const s of spies) s.mockRestore()
  })
  const consoleCalls = () => spies.flatMap((s) => s.mock.calls)

  it('an app with an amqp:// URL: the adapter logs through the app logger (masked), never the console', async () => {
    const logger = quietLogger()
    const app = createApp({ broker: URL_FOR_TESTS, defaultQueue: uniqueQueue('amqp-log'), tasks: [], logger })
    try {
      const { broker } = await app.connect()
      await provokeLine(broker)
      const line = await logger.waitFor(/\[amqp\] delivery handler .* threw/, 10_000)
      expect(line).toContain('handler blew up')
      expect(line).not.toContain(SECRET)
    } finally {
      await app.close()
    }
    expect(consoleCalls()).toEqual([])
  })

  it('the loose createBroker(url, context) factory logs through the context logger too', async () => {
    const logger = quietLogger()
    const broker = pool.track(createBroker(URL_FOR_TESTS, { logger }))
    try {
      await provokeLine(broker)
      const line = await logger.waitFor(/\[amqp\] delivery handler .* threw/, 10_000)
      expect(line).not.toContain(SECRET)
    } finally {
      await broker.close()
    }
    expect(consoleCalls()).toEqual([])
  })
})
