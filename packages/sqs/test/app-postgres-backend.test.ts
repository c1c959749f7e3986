import { runAppConformance } from '@errand/conformance'
import { PostgresResultBackend } from '@errand/postgres'
import { afterAll } from 'vitest'
import { SqsBroker } from '../src/index.js'
import { startSqs, testOptions } from './fauxqs.js'

// The cross pair: jobs in SQS (fauxqs), results in PostgreSQL. One fixed schema for this file's
// runs: migrations are idempotent and results expire, so reruns reuse it.
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const url = new URL(DATABASE_URL)
url.searchParams.set('schema', 'errand_conf_sqs_pg')

const sqs = await startSqs()
afterAll(() => sqs.stop())

runAppConformance({
  name: 'sqs broker + postgres backend',
  broker: () => new SqsBroker(testOptions(sqs.endpoint)),
  backend: () => new PostgresResultBackend({ url: url.toString() }),
  queuePrefix: 'app-sqs-pg',
})
