import {
  runAppConformance,
  runBrokerConformance,
  runResultBackendConformance,
  startTcpProxy,
} from '@errand/conformance'
import { silentLogger } from '@errand/core'
import { afterAll, describe } from 'vitest'
import { RedisBroker, RedisResultBackend } from '../src/index.js'
import { deletePrefix, REDIS_URL, redisAvailable, uniquePrefix } from './helpers.js'

const available = await redisAvailable()
const keyPrefix = uniquePrefix('conf')
// This file's own loopback proxy to the shared server, for the outage test: cutting it
// disturbs nobody else.
const proxy = await startTcpProxy(REDIS_URL)
const proxied = new URL(REDIS_URL)
proxied.hostname = '127.0.0.1'
proxied.port = String(proxy.port)

describe.runIf(available)('redis (standalone)', () => {
  afterAll(() => Promise.all([deletePrefix(keyPrefix), proxy.close()]))
  runBrokerConformance({
    name: 'redis',
    factory: () => new RedisBroker({ url: REDIS_URL, keyPrefix }),
    outage: {
      // maxRetriesPerRequest 0: a command fails as soon as its connection drops, instead of
      // waiting through 20 reconnect attempts (about 10 s).
      broker: () =>
        new RedisBroker({
          url: proxied.toString(),
          keyPrefix,
          redisOptions: { maxRetriesPerRequest: 0 },
          logger: silentLogger,
        }),
      cut: () => proxy.cut(),
      restore: () => proxy.restore(),
    },
  })
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
