import { runAppConformance } from '@errand/conformance'
import { MemoryResultBackend } from '@errand/core'
import { RedisResultBackend } from '@errand/redis'
import { afterAll, describe } from 'vitest'
import { AmqpBroker, type AmqpBrokerOptions } from '../src/index.js'
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
const broker = (options: Omit<AmqpBrokerOptions, 'url'>) => () =>
  pool.track(
    new AmqpBroker({
      url: AMQP_URL,
      queueExpiresMs: TEST_QUEUE_EXPIRES_MS,
      logger: quietLogger(),
      ...options,
    }),
  )

// End to end: RabbitMQ for the jobs, results in memory (no priorities, the default) or in Redis
// (with priorities, maxPriority 9). The Postgres pair is in app-postgres-backend.test.ts.
describe.runIf(available)('amqp app', () => {
  afterAll(() => pool.cleanup(), 120_000)
  runAppConformance({
    name: 'amqp broker (no priorities) + memory backend',
    broker: broker({}),
    backend: () => new MemoryResultBackend(),
    queuePrefix: 'app-amqp',
  })
  describe.runIf(withRedis)('with redis results', () => {
    // Result records, groups and claims are written with TTLs: the unique prefix expires on its own.
    runAppConformance({
      name: 'amqp broker (maxPriority 9) + redis backend',
      broker: broker({ maxPriority: 9 }),
      backend: () => new RedisResultBackend({ url: REDIS_URL, keyPrefix: redisPrefix }),
      queuePrefix: 'app-amqpr',
    })
  })
})
