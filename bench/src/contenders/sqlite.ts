/**
 * SQLite contenders, side by side, each run on a fresh database file under the OS temp dir
 * (deleted after the run):
 * - `errand sqlite`: Errand's app + worker over @errand/sqlite's SqliteBroker, no results;
 * - `errand sqlite + results`: the same with every result stored in SqliteResultBackend (same file);
 * - `errand sqlite broker`: the SqliteBroker alone (publish / consume / ack), the adapter's floor;
 * - `raw better-sqlite3 lease+delete`: the same lease-and-delete work with no framework: one
 *   `BEGIN IMMEDIATE` per turn deletes the previous turn's jobs and leases the next 50;
 * - `errand sqlite (durability process)`: enqueues only, publishes without an fsync;
 * - `errand redis`: Errand on the Redis at REDIS_URL, the reference drain rate.
 *
 * Run: cd bench && pnpm exec tsx --conditions=source src/cli.ts --store sqlite --rounds 3
 * Growth (drain rate with a backlog of 1,000,000 vs 20,000, and the file's size before, at the
 * peak, after draining and after maintain()):
 *   pnpm exec tsx --conditions=source src/contenders/sqlite.ts growth
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { RedisBroker } from '@errand/redis'
import { type Durability, SqliteBroker, SqliteResultBackend } from '@errand/sqlite'
import type { BenchPayload, Contender, ContenderSet } from '../contender.js'
import { RawSqliteQueue } from '../raw-sqlite.js'
import { brokerContender } from './broker-only.js'
import { errandContender } from './errand.js'

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const silentLogger = { warn: () => {} }

/** A fresh file per run, so that no run inherits another's free pages or WAL. */
function freshFile(): { url: string; path: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'errand-bench-sqlite-'))
  const path = join(dir, 'bench.db')
  return { url: `sqlite://${path}`, path, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** A fresh file per run, made on first use in the run and deleted by its cleanup. */
function perRun(): { url(): string; path(): string; remove(): void } {
  let file: ReturnType<typeof freshFile> | undefined
  const current = () => {
    file ??= freshFile()
    return file
  }
  return {
    url: () => current().url,
    path: () => current().path,
    remove: () => {
      file?.remove()
      file = undefined
    },
  }
}

/**
 * Errand (app + worker) on a fresh file per run, with or without a result backend on that file.
 * `durability: 'process'`: publishes do not wait for an fsync (see the package README).
 */
function errandSqlite(results: boolean, durability: Durability = 'publish'): Contender {
  const file = perRun()
  const suffix = durability === 'publish' ? '' : ` (durability ${durability})`
  return errandContender({
    name: (results ? 'errand sqlite + results' : 'errand sqlite') + suffix,
    broker: () => new SqliteBroker({ url: file.url(), logger: silentLogger, durability }),
    ...(results && { backend: () => new SqliteResultBackend({ url: file.url(), logger: silentLogger }) }),
    cleanup: async () => file.remove(),
  })
}

function sqliteBroker(): Contender {
  const file = perRun()
  return brokerContender({
    name: 'errand sqlite broker',
    broker: () => new SqliteBroker({ url: file.url(), logger: silentLogger }),
    cleanup: async (b, q) => {
      await b.purge(q)
      await b.close()
      file.remove()
    },
  })
}

/** The raw floor: see `RawSqliteQueue`. */
function rawSqlite(): Contender {
  const file = perRun()
  let q: RawSqliteQueue<BenchPayload> | undefined
  return {
    name: 'raw better-sqlite3 lease+delete',
    async open(queue) {
      q = new RawSqliteQueue(file.path(), queue)
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
    async close() {
      q?.close()
      file.remove()
    },
  }
}

/** Every SQLite contender, plus Errand on Redis as the reference, in one run. */
export const contenders: ContenderSet = () => [
  errandSqlite(false),
  errandSqlite(true),
  { ...errandSqlite(false, 'process'), unsupported: ['drain-c1', 'drain-c50', 'latency'] },
  sqliteBroker(),
  rawSqlite(),
  errandContender({ name: 'errand redis', broker: () => new RedisBroker({ url: REDIS_URL }) }),
]

/** Fill `n` jobs on `url`, drain them at concurrency 50 through the Errand app; jobs/s of the drain. */
async function drainRate(url: string, n: number, afterFill?: () => Promise<void>): Promise<number> {
  const c = errandContender({
    name: 'errand sqlite',
    broker: () => new SqliteBroker({ url, logger: silentLogger }),
  })
  await c.open(`bench-growth-${process.pid}-${n}`)
  try {
    const data = 'x'.repeat(100)
    for (let i = 0; i < n; i += 1000) {
      await c.enqueueBulk(
        Array.from({ length: Math.min(1000, n - i) }, (_, j) => ({ n: i + j, sentAt: 0, data })),
      )
    }
    await afterFill?.()
    let done = 0
    let resolve!: () => void
    const all = new Promise<void>((r) => {
      resolve = r
    })
    const start = performance.now()
    await c.startWorker(50, () => {
      if (++done % 200_000 === 0)
        console.error(`  ${done} drained after ${((performance.now() - start) / 1000).toFixed(1)} s`)
      if (done === n) resolve()
    })
    await all
    const seconds = (performance.now() - start) / 1000
    await c.stopWorker()
    return n / seconds
  } finally {
    await c.close()
  }
}

const mib = (bytes: number): string => `${(bytes / 1048576).toFixed(2)} MiB`

/**
 * The growth check on one file: drain rate at a 20,000-job backlog, then at 1,000,000, with the
 * file and WAL sizes at the start, at the peak, after draining, and after `maintain()`. Writes
 * bench/results/sqlite-growth-<time>.json.
 */
export async function growth(big = 1_000_000, small = 20_000): Promise<void> {
  const file = freshFile()
  try {
    const broker = new SqliteBroker({ url: file.url, logger: silentLogger })
    await broker.connect()
    const size = () => broker.size()
    const start = await size()
    console.error(`start: file ${mib(start.file)}, wal ${mib(start.wal)}`)
    const smallRate = await drainRate(file.url, small)
    console.error(`drain of ${small}: ${Math.round(smallRate)} jobs/s`)
    let peak = start
    const bigRate = await drainRate(file.url, big, async () => {
      peak = await size()
      console.error(`backlog of ${big}: file ${mib(peak.file)}, wal ${mib(peak.wal)}`)
    })
    console.error(
      `drain of ${big}: ${Math.round(bigRate)} jobs/s (${((bigRate / smallRate) * 100).toFixed(0)}% of the ${small} rate)`,
    )
    const drained = await size()
    console.error(
      `after draining: file ${mib(drained.file)}, wal ${mib(drained.wal)}, free ${mib(drained.free)}`,
    )
    const { after } = await broker.maintain()
    console.error(`after maintain(): file ${mib(after.file)}, wal ${mib(after.wal)}, free ${mib(after.free)}`)
    await broker.close()
    const out = `results/sqlite-growth-${new Date().toISOString().replace(/[:.]/g, '-')}.json`
    await writeFile(
      new URL(`../../${out}`, import.meta.url),
      JSON.stringify(
        { big, small, smallRate, bigRate, start, peak, drained, after, at: new Date().toISOString() },
        null,
        2,
      ),
    )
    console.error(`written to bench/${out}`)
  } finally {
    file.remove()
  }
}

if (
  process.argv[1] !== undefined &&
  import.meta.url === pathToFileURL(process.argv[1]).href &&
  process.argv[2] === 'growth'
) {
  await growth(Number(process.argv[3] ?? 1_000_000), Number(process.argv[4] ?? 20_000))
  process.exit(0)
}
