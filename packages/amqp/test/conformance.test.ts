import { runAppConformance, runBrokerConformance } from '@errand/conformance'
import { MemoryResultBackend } from '@errand/core'
import { RedisResultBackend } from '@errand/redis'
import { afterAll, describe } from 'vitest'
import { AmqpBroker } from '../src/index.js'
import { AMQP_URL, BrokerPool, quietLogger, rabbitAvailable, TEST_QUEUE_EXPIRES_MS } from './helpers.js'

const available = await rabbitAvailable()
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const redisPrefix = `amqp-conf-${Date.now().toString(36)}`

async function redisAvailable(): Promise<boolean> {
  const probe = new RedisResultBackend({ url: REDIS_URL, keyPrefix: redisPrefix })
  try {
    await probe.connect()
    return true
  } catch (err) {
    if (process.env.CI === 'true') throw new Error(`Redis is not reachable at REDIS_URL (${String(err)})`)
    return false
  } finally {
    await probe.close().catch(() => {})
  }
}
const withRedis = available && (await redisAvailable())

const pool = new BrokerPool()
const classic =
  (maxPriority = 0) =>
  () =>
    pool.track(
      new AmqpBroker({
        url: AMQP_URL,
        maxPriority,
        queueExpiresMs: TEST_QUEUE_EXPIRES_MS,
        logger: quietLogger(),
      }),
    )
const quorum = () =>
  pool.track(
    new AmqpBroker({
      url: AMQP_URL,
      queueType: 'quorum',
      queueExpiresMs: TEST_QUEUE_EXPIRES_MS,
      logger: quietLogger(),
    }),
  )

// Priorities: on in the classic broker suite and the redis-results app suite (maxPriority 9), off
// (the default) in the quorum suite and the memory-results app suite.
describe.runIf(available)('amqp (RabbitMQ)', () => {
  afterAll(() => pool.cleanup(), 120_000)
  runBrokerConformance({ name: 'amqp classic, maxPriority 9', factory: classic(9), queuePrefix: 'conf-amqp' })
  runBrokerConformance({ name: 'amqp quorum', factory: quorum, queuePrefix: 'conf-amqpq' })
  runAppConformance({
    name: 'amqp broker (no priorities) + memory backend',
    broker: classic(0),
    backend: () => new MemoryResultBackend(),
    queuePrefix: 'app-amqp',
  })
  describe.runIf(withRedis)('with redis results', () => {
    // Result records, groups and claims are written with TTLs: the unique prefix expires on its own.
    runAppConformance({
      name: 'amqp broker (maxPriority 9) + redis backend',
      broker: classic(9),
      backend: () => new RedisResultBackend({ url: REDIS_URL, keyPrefix: redisPrefix }),
      queuePrefix: 'app-amqpr',
    })
  })
})
