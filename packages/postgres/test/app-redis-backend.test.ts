import { runAppConformance } from '@errand/conformance'
import { RedisResultBackend } from '@errand/redis'
import { afterAll } from 'vitest'
import { PostgresBroker } from '../src/index.js'
import { dropSchema, schemaUrl, uniqueSchema } from './helpers.js'

// The cross pair: jobs in PostgreSQL, results in Redis (every store must work with every backend).
const schema = uniqueSchema('appredis')
const url = schemaUrl(schema)
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const keyPrefix = `errand-pg-app-${Date.now().toString(36)}`
afterAll(() => dropSchema(schema))

runAppConformance({
  name: 'postgres broker + redis backend',
  broker: () => new PostgresBroker({ url }),
  backend: () => new RedisResultBackend({ url: REDIS_URL, keyPrefix }),
  queuePrefix: 'app-pgr',
})
