import { runAppConformance } from '@errand/conformance'
import { PostgresResultBackend } from '@errand/postgres'
import { afterAll, describe } from 'vitest'
import { BrokerPool, rabbitAvailable } from './helpers.js'

// The cross pair: jobs in RabbitMQ, results in PostgreSQL. One fixed schema for this file's runs:
// migrations are idempotent and results expire, so reruns reuse it instead of piling up schemas.
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const url = new URL(DATABASE_URL)
url.searchParams.set('schema', 'errand_conf_amqp_pg')

const available = await rabbitAvailable()
const pool = new BrokerPool()

describe.runIf(available)('amqp broker + postgres backend', () => {
  afterAll(() => pool.cleanup(), 120_000)
  runAppConformance({
    name: 'amqp broker + postgres backend',
    broker: () => pool.broker(),
    backend: () => new PostgresResultBackend({ url: url.toString() }),
    queuePrefix: 'app-amqp-pg',
  })
})
