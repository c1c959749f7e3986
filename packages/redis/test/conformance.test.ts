import { runAppConformance, runBrokerConformance, runResultBackendConformance } from '@errand/conformance'
import { afterAll, describe } from 'vitest'
import { RedisBroker, RedisResultBackend } from '../src/index.js'
import { deletePrefix, REDIS_URL, redisAvailable, uniquePrefix } from './helpers.js'

const available = await redisAvailable()
const keyPrefix = uniquePrefix('conf')

describe.runIf(available)('redis (standalone)', () => {
  afterAll(() => deletePrefix(keyPrefix))
  runBrokerConformance({ name: 'redis', factory: () => new RedisBroker({ url: REDIS_URL, keyPrefix }) })
  runResultBackendConformance({
    name: 'redis',
    factory: () => new RedisResultBackend({ url: REDIS_URL, keyPrefix, eventRetention: 100 }),
    eventRetention: 100,
  })
  runAppConformance({
    name: 'redis broker + redis backend',
    broker: () => new RedisBroker({ url: REDIS_URL, keyPrefix }),
    backend: () => new RedisResultBackend({ url: REDIS_URL, keyPrefix }),
  })
})
