import { connect } from 'node:net'
import { runAppConformance } from '@errand/conformance'
import { MemoryResultBackend } from '@errand/core'
import { RedisResultBackend } from '@errand/redis'
import { afterAll, describe } from 'vitest'
import { SqsBroker } from '../src/index.js'
import { startSqs, testOptions, uniqueQueue } from './fauxqs.js'

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

/** TCP check of the Redis server; under CI a missing server fails instead of skipping. */
async function redisAvailable(): Promise<boolean> {
  const { hostname, port } = new URL(REDIS_URL)
  const ok = await new Promise<boolean>((resolve) => {
    const socket = connect({ host: hostname, port: Number(port || 6379) })
    socket.setTimeout(2000)
    const done = (result: boolean) => {
      socket.destroy()
      resolve(result)
    }
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
    socket.once('timeout', () => done(false))
  })
  if (!ok && process.env.CI === 'true') throw new Error(`Redis is not reachable at ${REDIS_URL} (CI=true)`)
  return ok
}

const sqs = await startSqs()
afterAll(() => sqs.stop())
const withRedis = await redisAvailable()
const keyPrefix = uniqueQueue('errand-sqs-app')
const memoryName = uniqueQueue('sqs-app')

runAppConformance({
  name: 'sqs broker + memory backend',
  broker: () => new SqsBroker(testOptions(sqs.endpoint)),
  backend: () => new MemoryResultBackend({ name: memoryName }),
  queuePrefix: 'app-sqs',
})

describe.runIf(withRedis)('with redis results', () => {
  // Result records, groups and claims are written with TTLs: the unique prefix expires on its own.
  runAppConformance({
    name: 'sqs broker + redis backend',
    broker: () => new SqsBroker(testOptions(sqs.endpoint)),
    backend: () => new RedisResultBackend({ url: REDIS_URL, keyPrefix }),
    queuePrefix: 'app-sqsr',
  })
})
