/**
 * Redis, on REDIS_URL (default 127.0.0.1:6379; BENCH_REDIS_AOF_URL adds the AOF variants).
 * Every run has its own key prefix and deletes its keys at the end.
 */
import { RedisBroker, RedisResultBackend } from '@errand/redis'
import { Queue as BullQueue, Worker as BullWorker } from 'bullmq'
import { Redis } from 'ioredis'
import type { Contender, ContenderMeta, OnJob, Payload, RunOptions, StoreModule } from '../types.js'
import { errand } from './errand.js'
import { pkgVersion } from './versions.js'

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const AOF_URL = process.env.BENCH_REDIS_AOF_URL
const BULLMQ = `bullmq ${pkgVersion('bullmq')}`
const IOREDIS = `ioredis ${pkgVersion('ioredis')}`
const NO_AOF = 'in memory, no AOF, no RDB (server runs --appendonly no --save "")'
const AOF = 'AOF appendfsync everysec (second server)'

function conn(url: string): { host: string; port: number } {
  const u = new URL(url)
  return { host: u.hostname || '127.0.0.1', port: Number(u.port || 6379) }
}

async function deleteKeys(url: string, pattern: string): Promise<void> {
  const client = new Redis(url)
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

function errandRedis(
  url: string,
  id: string,
  run: RunOptions,
  results: boolean,
  noEvents = false,
): Contender {
  const keyPrefix = `bench-c-${id}`
  return errand({
    run,
    queue: `q-${id}`,
    broker: () => new RedisBroker({ url, keyPrefix }),
    ...(results && { backend: () => new RedisResultBackend({ url, keyPrefix }) }),
    noEvents,
    teardown: () => deleteKeys(url, `${keyPrefix}:*`),
  })
}

/**
 * BullMQ at its defaults; `keep` false: `removeOnComplete: true` (no results kept). Retries
 * (failure path): `attempts: 1 + retries` on every job, no backoff.
 */
function bullmq(url: string, id: string, run: RunOptions, keep: boolean): Contender {
  const connection = { ...conn(url), maxRetriesPerRequest: null }
  const prefix = `bench-c-${id}`
  const name = `q-${id}`
  const retries = run.retries ?? 0
  let queue: BullQueue | undefined
  let worker: BullWorker | undefined
  return {
    async setup() {
      const defaultJobOptions = {
        ...(!keep && { removeOnComplete: true }),
        ...(retries > 0 && { attempts: 1 + retries }),
      }
      queue = new BullQueue(name, {
        connection,
        prefix,
        ...(Object.keys(defaultJobOptions).length > 0 && { defaultJobOptions }),
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
          await onJob(job.data as Payload)
          return (job.data as Payload).n
        },
        { connection, prefix, concurrency },
      )
      worker.on('error', () => {})
      await worker.waitUntilReady()
    },
    async stopWorker() {
      await worker?.close()
      worker = undefined
    },
    async remaining() {
      const c = await queue!.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children')
      return Object.values(c).reduce((a, b) => a + b, 0)
    },
    async teardown() {
      await queue?.close()
      await deleteKeys(url, `${prefix}:*`)
    },
  }
}

/**
 * Raw ioredis floor: LPUSH to enqueue. `brpop`: `concurrency` connections, each a BRPOP loop
 * (one job per round trip per connection). Otherwise one connection doing BLMPOP COUNT
 * `concurrency` (a batch of at most `concurrency` in flight, handled together). No acks, no
 * leases; a handler that throws has its job pushed back (the failure path's retry).
 */
function raw(url: string, id: string, brpop: boolean): Contender {
  const key = `bench-c-${id}:list`
  let client: Redis | undefined
  let blocking: Redis[] = []
  let running = false
  let loops: Promise<void>[] = []
  /** Run the handler on one item; a throw (or rejection) pushes the item back for a retry. */
  const handle = (item: string, onJob: OnJob): Promise<unknown> | undefined => {
    let waiting: void | Promise<void>
    try {
      waiting = onJob(JSON.parse(item) as Payload)
    } catch {
      return client!.lpush(key, item)
    }
    return waiting?.catch(() => client!.lpush(key, item))
  }
  return {
    async setup() {
      client = new Redis(url)
      await client.ping()
    },
    async enqueueOne(p) {
      await client!.lpush(key, JSON.stringify(p))
    },
    async enqueueBulk(ps) {
      await client!.lpush(key, ...ps.map((p) => JSON.stringify(p)))
    },
    async startWorker(concurrency, onJob) {
      running = true
      const n = brpop ? concurrency : 1
      blocking = Array.from({ length: n }, () => {
        const b = new Redis(url, { maxRetriesPerRequest: null })
        b.on('error', () => {})
        return b
      })
      await Promise.all(blocking.map((b) => b.ping()))
      loops = blocking.map(async (b) => {
        while (running) {
          try {
            if (brpop) {
              const reply = await b.brpop(key, 0.2)
              if (reply) {
                const waiting = handle(reply[1], onJob)
                if (waiting) await waiting
              }
            } else {
              const reply = (await b.call('BLMPOP', 0.2, 1, key, 'RIGHT', 'COUNT', concurrency)) as
                | [string, string[]]
                | null
              if (reply) {
                const waiting: Promise<unknown>[] = []
                for (const item of reply[1]) {
                  const w = handle(item, onJob)
                  if (w) waiting.push(w)
                }
                if (waiting.length > 0) await Promise.all(waiting)
              }
            }
          } catch {
            if (!running) return
          }
        }
      })
    },
    async stopWorker() {
      running = false
      await Promise.all(loops)
      for (const b of blocking) b.disconnect()
    },
    async remaining() {
      return client!.llen(key)
    },
    async teardown() {
      await client?.del(key)
      client?.disconnect()
    },
  }
}

const variants = (aof: boolean): ContenderMeta[] => {
  const s = aof ? ' aof' : ''
  const durability = aof ? AOF : NO_AOF
  const floor = aof ? 'redis-aof' : 'redis'
  return [
    {
      name: `errand${s}`,
      class: 'no-results',
      errand: true,
      durability,
      durabilityShort: aof ? 'AOF everysec' : 'no AOF',
      library: '@errand/redis (workspace)',
      settings: 'defaults (no result backend; trackStarted on)',
      floor,
    },
    {
      name: `bullmq-remove${s}`,
      class: 'no-results',
      durability,
      durabilityShort: aof ? 'AOF everysec' : 'no AOF',
      library: BULLMQ,
      settings: 'defaults + removeOnComplete: true; Worker { concurrency }',
      floor,
    },
    {
      name: `errand+results${s}`,
      class: 'results',
      errand: true,
      durability,
      durabilityShort: aof ? 'AOF everysec' : 'no AOF',
      library: '@errand/redis (workspace)',
      settings: 'defaults, RedisResultBackend (every result stored; trackStarted on)',
      floor,
    },
    {
      name: `bullmq-keep${s}`,
      class: 'results',
      durability,
      durabilityShort: aof ? 'AOF everysec' : 'no AOF',
      library: BULLMQ,
      settings: 'defaults (completed jobs and return values kept); Worker { concurrency }',
      floor,
    },
    {
      name: `raw-brpop${s}`,
      class: 'floor',
      durability,
      durabilityShort: aof ? 'AOF everysec' : 'no AOF',
      library: IOREDIS,
      settings: 'LPUSH; c connections, each a BRPOP loop (1 job per round trip); no ack, no lease',
      floor,
    },
    {
      name: `raw-blmpop${s}`,
      class: 'floor',
      durability,
      durabilityShort: aof ? 'AOF everysec' : 'no AOF',
      library: IOREDIS,
      settings: 'LPUSH; 1 connection, BLMPOP COUNT c (at most c in flight); no ack, no lease',
      floor,
    },
  ]
}

export const store: StoreModule = {
  metas: [...variants(false), ...(AOF_URL ? variants(true) : [])],
  create(name, id, run = {}) {
    const aof = name.endsWith(' aof')
    const url = aof ? AOF_URL! : REDIS_URL
    const base = aof ? name.slice(0, -4) : name
    switch (base) {
      case 'errand':
        return errandRedis(url, id, run, false)
      case 'errand+results':
        return errandRedis(url, id, run, true)
      // Diagnostics, not in the published set: the result backend without task events.
      case 'diag-errand+results-noevents':
        return errandRedis(url, id, run, true, true)
      case 'bullmq-remove':
        return bullmq(url, id, run, false)
      case 'bullmq-keep':
        return bullmq(url, id, run, true)
      case 'raw-brpop':
        return raw(url, id, true)
      case 'raw-blmpop':
        return raw(url, id, false)
    }
    throw new Error(`unknown redis contender ${name}`)
  },
  async versions() {
    const c = new Redis(REDIS_URL)
    const info = await c.info('server')
    c.disconnect()
    const out: Record<string, string> = {
      'redis-server': /redis_version:(\S+)/.exec(info)?.[1] ?? '?',
      bullmq: pkgVersion('bullmq'),
      ioredis: pkgVersion('ioredis'),
    }
    if (AOF_URL) out['redis-server (AOF)'] = AOF_URL
    return out
  },
}
