import { runBrokerConformance } from '@errand/conformance'
import { afterAll, describe } from 'vitest'
import { AmqpBroker, type AmqpBrokerOptions } from '../src/index.js'
import { AMQP_URL, BrokerPool, quietLogger, rabbitAvailable, TEST_QUEUE_EXPIRES_MS } from './helpers.js'

const available = await rabbitAvailable()
const pool = new BrokerPool()
const factory = (options: Omit<AmqpBrokerOptions, 'url'>) => () =>
  pool.track(
    new AmqpBroker({
      url: AMQP_URL,
      queueExpiresMs: TEST_QUEUE_EXPIRES_MS,
      logger: quietLogger(),
      ...options,
    }),
  )

// Priorities on in the classic variant (maxPriority 9); the quorum variant has none (the default).
// The app suites run in app-conformance.test.ts and app-postgres-backend.test.ts.
describe.runIf(available)('amqp (RabbitMQ)', () => {
  afterAll(() => pool.cleanup(), 120_000)
  runBrokerConformance({
    name: 'amqp classic, maxPriority 9',
    factory: factory({ maxPriority: 9 }),
    queuePrefix: 'conf-amqp',
  })
  runBrokerConformance({
    name: 'amqp quorum',
    factory: factory({ queueType: 'quorum' }),
    queuePrefix: 'conf-amqpq',
  })
})
