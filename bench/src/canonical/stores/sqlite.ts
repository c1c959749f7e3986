/**
 * SQLite: every run on a fresh file under the OS temp dir (deleted at the end).
 * - `errand`, `errand+results`: the app + worker over SqliteBroker (+ SqliteResultBackend on the
 *   same file) at the defaults (`durability: 'publish'`, trackStarted on);
 * - `broker`: the SqliteBroker alone (publish / consume / ack, no app), the adapter's floor;
 * - `raw`: a raw better-sqlite3 loop doing the same lease-and-delete work with the same
 *   durability (WAL, `synchronous = FULL` for inserts, NORMAL for leases and deletes): one
 *   `BEGIN IMMEDIATE` per turn deletes the previous turn's jobs and leases up to c more;
 * - `errand-redis`: Errand on the Redis at REDIS_URL (no AOF), the reference.
 *
 *   pnpm bench:canonical -- --store sqlite --runs 3 --workloads drain-c50,enqueue-bulk
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RedisBroker } from '@errand/redis'
import { SqliteBroker, SqliteResultBackend } from '@errand/sqlite'
import { Redis } from 'ioredis'
import { RawSqliteQueue } from '../../raw-sqlite.js'
import type { Contender, ContenderMeta, Payload, RunOptions, StoreModule } from '../types.js'
import { errand } from './errand.js'
import { pkgVersion } from './versions.js'

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const silentLogger = { warn: () => {} }
const DURABILITY = 'WAL; publish waits for an fsync, leases and acks do not (durability: publish)'

function freshFile(): { url: string; path: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'errand-bench-sqlite-'))
  const path = join(dir, 'bench.db')
  return { url: `sqlite://${path}`, path, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

function errandSqlite(id: string, run: RunOptions, results: boolean): Contender {
  const file = freshFile()
  return errand({
    run,
    queue: `q-${id}`,
    broker: () => new SqliteBroker({ url: file.url, logger: silentLogger }),
    ...(results && { backend: () => new SqliteResultBackend({ url: file.url, logger: silentLogger }) }),
    teardown: async () => file.remove(),
  })
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** The SqliteBroker alone: publish, consume with prefetch c, ack each delivery. */
function brokerOnly(id: string): Contender {
  const file = freshFile()
  const queue = `q-${id}`
  let broker: SqliteBroker | undefined
  let consumer: { cancel(): Promise<void> } | undefined
  const acks = new Set<Promise<void>>()
  const running = new Set<Promise<void>>()
  const body = (p: Payload) => ({ body: encoder.encode(JSON.stringify(p)) })
  return {
    async setup() {
      broker = new SqliteBroker({ url: file.url, logger: silentLogger })
      await broker.connect()
    },
    async enqueueOne(p) {
      await broker!.publish(queue, [body(p)])
    },
    async enqueueBulk(ps) {
      await broker!.publish(queue, ps.map(body))
    },
    async startWorker(concurrency, onJob) {
      consumer = await broker!.consume(
        queue,
        (d) => {
          const ackNow = () => {
            const ack = d.ack()
            acks.add(ack)
            void ack.finally(() => acks.delete(ack))
          }
          const waiting = onJob(JSON.parse(decoder.decode(d.body)) as Payload)
          if (waiting === undefined) ackNow()
          else {
            const handled = waiting.then(ackNow)
            running.add(handled)
            void handled.finally(() => running.delete(handled))
          }
        },
        { prefetch: concurrency },
      )
    },
    async stopWorker() {
      // Handlers that take time may still run, and the last acks are still queued: let them
      // finish and commit before cancelling.
      await Promise.allSettled([...running])
      await Promise.allSettled([...acks])
      await consumer?.cancel()
    },
    async remaining() {
      const s = await broker!.stats(queue)
      return s.ready + (s.delayed ?? 0) + (s.inFlight ?? 0)
    },
    async teardown() {
      await broker?.close()
      file.remove()
    },
  }
}

/** The raw floor (see the module comment). */
function raw(id: string): Contender {
  const file = freshFile()
  let q: RawSqliteQueue<Payload> | undefined
  return {
    async setup() {
      q = new RawSqliteQueue(file.path, `q-${id}`)
    },
    async enqueueOne(p) {
      q!.enqueueOne(p)
    },
    async enqueueBulk(ps) {
      q!.enqueueBulk(ps)
    },
    async startWorker(concurrency, onJob) {
      q!.startWorker(concurrency, onJob)
    },
    stopWorker: () => q!.stopWorker(),
    async remaining() {
      return q!.remaining()
    },
    async teardown() {
      q?.close()
      file.remove()
    },
  }
}

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

const metas: ContenderMeta[] = [
  {
    name: 'errand',
    class: 'no-results',
    errand: true,
    durability: DURABILITY,
    durabilityShort: 'fsync at publish',
    library: '@errand/sqlite (workspace)',
    settings: 'defaults (no result backend; trackStarted on)',
    floor: 'sqlite',
    // Each run's file is made by its contender: a worker process would make another.
    unsupported: ['drain-c*-p*'],
  },
  {
    name: 'errand+results',
    class: 'results',
    errand: true,
    durability: DURABILITY,
    durabilityShort: 'fsync at publish',
    library: '@errand/sqlite (workspace)',
    settings: 'defaults, SqliteResultBackend on the same file (trackStarted on)',
    floor: 'sqlite',
    unsupported: ['drain-c*-p*'],
  },
  {
    name: 'broker',
    class: 'floor',
    durability: DURABILITY,
    durabilityShort: 'fsync at publish',
    library: '@errand/sqlite (workspace)',
    settings: 'SqliteBroker alone: publish / consume (prefetch c) / ack, no app',
    floor: 'sqlite-broker',
    unsupported: ['fail-*', 'drain-c*-p*'],
  },
  {
    name: 'raw',
    class: 'floor',
    durability: 'WAL; inserts synchronous=FULL, leases and deletes NORMAL',
    durabilityShort: 'fsync at publish',
    library: `better-sqlite3 ${pkgVersion('better-sqlite3')}`,
    settings: 'one BEGIN IMMEDIATE per turn: delete the previous turn, lease up to c',
    floor: 'sqlite',
    // A synchronous loop: no handler time, no retry path.
    unsupported: ['fail-*', 'drain-c*-h*', 'drain-c*-p*'],
  },
  {
    name: 'errand-redis',
    class: 'no-results',
    errand: true,
    durability: 'Redis in memory, no AOF',
    durabilityShort: 'no AOF',
    library: '@errand/redis (workspace)',
    settings: 'defaults (no result backend; trackStarted on); the reference',
    unsupported: ['drain-c*-p*'],
  },
]

export const store: StoreModule = {
  metas,
  create(name, id, run = {}) {
    switch (name) {
      case 'errand':
        return errandSqlite(id, run, false)
      case 'errand+results':
        return errandSqlite(id, run, true)
      case 'broker':
        return brokerOnly(id)
      case 'raw':
        return raw(id)
      case 'errand-redis': {
        const keyPrefix = `bench-c-${id}`
        return errand({
          run,
          queue: `q-${id}`,
          broker: () => new RedisBroker({ url: REDIS_URL, keyPrefix }),
          teardown: () => deleteKeys(`${keyPrefix}:*`),
        })
      }
    }
    throw new Error(`unknown sqlite contender ${name}`)
  },
  async versions() {
    return { 'better-sqlite3': pkgVersion('better-sqlite3'), ioredis: pkgVersion('ioredis') }
  },
}
