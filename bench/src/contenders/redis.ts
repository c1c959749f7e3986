/**
 * Redis contenders, side by side on the Redis at REDIS_URL (default 127.0.0.1:6379):
 * - `errand redis`: Errand's app + worker over @errand/redis's RedisBroker, no result backend;
 * - `errand redis + results`: the same with every result stored in RedisResultBackend (BullMQ
 *   keeps each job's return value, so this is the fair comparison);
 * - `errand redis broker`: the RedisBroker alone (publish / consume / ack), the adapter's floor;
 * - `bullmq 6.7.0`, with its recommended settings (connection `maxRetriesPerRequest: null`,
 *   `removeOnComplete`/`removeOnFail` by count, one Worker at the given concurrency);
 * - `bee-queue 2.0.0`, producer and worker queues with events and job storage off;
 * - raw ioredis loops: LPUSH + one BRPOP per job, and LPUSH + BLMPOP COUNT 100 (no acks, no
 *   leases: the floor a reliable queue pays on top of).
 *
 * Run: cd bench && pnpm exec tsx --conditions=source src/cli.ts --store redis
 * Heap of the worker process at start and end of each drain: BENCH_HEAP=1 NODE_OPTIONS=--expose-gc.
 */
import { RedisBroker, RedisResultBackend } from '@errand/redis'
import BeeQueue from 'bee-queue'
import { Queue as BullQueue, Worker as BullWorker } from 'bullmq'
import { Redis } from 'ioredis'
import type { BenchPayload, Contender, ContenderSet } from '../contender.js'
import { brokerContender } from './broker-only.js'
import { errandContender } from './errand.js'

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const url = new URL(REDIS_URL)
const HOST = url.hostname || '127.0.0.1'
const PORT = Number(url.port || 6379)
const _encoder = new TextEncoder()
const _decoder = new TextDecoder()

/** Delete every key under `prefix` (only the bench's own keys). */
async function deleteKeys(pattern: string): Promise<void> {
  const client = new Redis(REDIS_URL)
  try {
    let cursor = '0'
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 5000)
      cursor = next
      if (keys.length > 0) await client.unlink(...keys)
    } while (cursor !== '0')
  } finally {
    client.disconnect()
  }
}

/** Logs the heap after a full GC at the start and end of each drain (BENCH_HEAP=1, --expose-gc). */
function withHeap(c: Contender): Contender {
  if (!process.env.BENCH_HEAP) return c
  const heap = () => {
    ;(globalThis as { gc?: () => void }).gc?.()
    return `${(process.memoryUsage().heapUsed / 1048576).toFixed(1)} MiB`
  }
  let start = ''
  return {
    ...c,
    name: c.name,
    async startWorker(concurrency, onJob) {
      start = heap()
      await c.startWorker(concurrency, onJob)
    },
    async stopWorker() {
      await c.stopWorker()
      console.error(`heap ${c.name}: start ${start}, end ${heap()}`)
    },
  }
}

/** The RedisBroker alone: publish, consume, ack. */
function errandBroker(): Contender {
  const keyPrefix = `bench-errand-broker-${process.pid}`
  return brokerContender({
    name: 'errand redis broker',
    broker: () => new RedisBroker({ url: REDIS_URL, keyPrefix }),
    cleanup: () => deleteKeys(`${keyPrefix}:*`),
  })
}

function errandApp(withResults: boolean): Contender {
  const keyPrefix = `bench-errand-${withResults ? 'results' : 'app'}-${process.pid}`
  return errandContender({
    name: withResults ? 'errand redis + results' : 'errand redis',
    broker: () => new RedisBroker({ url: REDIS_URL, keyPrefix }),
    ...(withResults && { backend: () => new RedisResultBackend({ url: REDIS_URL, keyPrefix }) }),
    cleanup: () => deleteKeys(`${keyPrefix}:*`),
  })
}

/** BullMQ with the settings its docs recommend for production workers. */
function bullmq(): Contender {
  const connection = { host: HOST, port: PORT, maxRetriesPerRequest: null }
  let queue: BullQueue | undefined
  let worker: BullWorker | undefined
  let name = ''
  return {
    name: 'bullmq 6.7.0',
    async open(q) {
      name = q
      queue = new BullQueue(q, {
        connection,
        defaultJobOptions: { removeOnComplete: { count: 1000 }, removeOnFail: { count: 5000 } },
      })
      await queue.waitUntilReady()
    },
    async enqueueOne(p) {
      await queue!.add('job', p)
    },
    async enqueueBulk(ps) {
      await queue!.addBulk(ps.map((p) => ({ name: 'job', data: p })))
    },
    async startWorker(concurrency, onJob) {
      worker = new BullWorker(
        name,
        async (job) => {
          onJob(job.data as BenchPayload)
          return (job.data as BenchPayload).n
        },
        { connection, concurrency },
      )
      worker.on('error', () => {})
      await worker.waitUntilReady()
    },
    async stopWorker() {
      await worker?.close()
      worker = undefined
    },
    async close() {
      await queue!.obliterate({ force: true })
      await queue!.close()
    },
  }
}

/** bee-queue: a producer queue and, while draining, a worker queue; events and job storage off. */
function beeQueue(): Contender {
  const redis = { host: HOST, port: PORT }
  let producer: BeeQueue<BenchPayload> | undefined
  let worker: BeeQueue<BenchPayload> | undefined
  let name = ''
  const settings = {
    redis,
    getEvents: false,
    sendEvents: false,
    storeJobs: false,
    removeOnSuccess: true,
    removeOnFailure: true,
  }
  return {
    name: 'bee-queue 2.0.0',
    async open(q) {
      name = q
      producer = new BeeQueue<BenchPayload>(q, { ...settings, isWorker: false })
      await producer.ready()
    },
    async enqueueOne(p) {
      await producer!.createJob(p).save()
    },
    async enqueueBulk(ps) {
      const errors = await producer!.saveAll(ps.map((p) => producer!.createJob(p)))
      if (errors.size > 0) throw [...errors.values()][0]
    },
    async startWorker(concurrency, onJob) {
      worker = new BeeQueue<BenchPayload>(name, { ...settings, isWorker: true })
      await worker.ready()
      worker.process(concurrency, async (job) => {
        onJob(job.data)
        return job.data.n
      })
    },
    async stopWorker() {
      await worker?.close()
      worker = undefined
    },
    async close() {
      await producer!.destroy()
      await producer!.close()
    },
  }
}

/** Raw ioredis: LPUSH, then one pop per round trip (BRPOP) or up to 100 (BLMPOP COUNT). */
function rawLoop(batch: boolean): Contender {
  let client: Redis | undefined
  let blocking: Redis | undefined
  let key = ''
  let running = false
  let loop: Promise<void> | undefined
  return {
    name: batch ? 'raw ioredis BLMPOP COUNT 100' : 'raw ioredis BRPOP',
    async open(q) {
      key = `bench-raw:${q}`
      client = new Redis(REDIS_URL)
    },
    async enqueueOne(p) {
      await client!.lpush(key, JSON.stringify(p))
    },
    async enqueueBulk(ps) {
      await client!.lpush(key, ...ps.map((p) => JSON.stringify(p)))
    },
    async startWorker(_concurrency, onJob) {
      blocking = new Redis(REDIS_URL, { maxRetriesPerRequest: null })
      blocking.on('error', () => {})
      running = true
      const b = blocking
      loop = (async () => {
        while (running) {
          try {
            if (batch) {
              const reply = (await b.call('BLMPOP', 1, 1, key, 'RIGHT', 'COUNT', 100)) as
                | [string, string[]]
                | null
              if (reply) for (const item of reply[1]) onJob(JSON.parse(item) as BenchPayload)
            } else {
              const reply = await b.brpop(key, 1)
              if (reply) onJob(JSON.parse(reply[1]) as BenchPayload)
            }
          } catch {
            if (!running) return
          }
        }
      })()
    },
    async stopWorker() {
      running = false
      blocking?.disconnect()
      await loop
    },
    async close() {
      await client!.del(key)
      client!.disconnect()
    },
  }
}

export const contenders: ContenderSet = () =>
  [
    errandApp(false),
    errandApp(true),
    errandBroker(),
    bullmq(),
    beeQueue(),
    rawLoop(false),
    rawLoop(true),
  ].map(withHeap)
