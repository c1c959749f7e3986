/**
 * Crash storm: how often does a delivery that never reached a handler spend the redelivery
 * budget on PostgreSQL? Publishes JOBS jobs, runs one worker process at a time (worker.ts) and
 * SIGKILLs it every JOBS/KILLS finished handlers (or, with KILL_EVERY_MS, that long after each
 * worker reported READY, whatever it finished), then reports per job the deliveries the
 * broker counted against those that reached core and those whose handler started.
 *
 *   cd packages/postgres && ../../bench/node_modules/.bin/tsx --conditions=source \
 *     test/crash-storm/storm.ts [prefetch=10] [jobs=2000] [kills=20] [concurrency=10] [killEveryMs=0]
 */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { createApp, decodeEnvelope, defineTask, silentLogger } from '@errand/core'
import { z } from 'zod'
import { PostgresBroker } from '../../src/index.js'
import { dropSchema, schemaUrl, sql, uniqueQueue, uniqueSchema } from '../helpers.js'

const [prefetch = 10, jobs = 2000, kills = 20, concurrency = 10, killEveryMs = 0] = process.argv
  .slice(2)
  .map(Number)
const schema = uniqueSchema('storm')
const url = schemaUrl(schema)
const queue = uniqueQueue('storm')
const work = defineTask({ name: 'storm.work', queue, input: z.number(), handler: () => undefined })

const fetched = new Map<number, number>()
const started = new Map<number, number>()
const lastAttempt = new Map<number, number>()
let finished = 0
let killed = 0
const bump = (m: Map<number, number>, n: number): void => void m.set(n, (m.get(n) ?? 0) + 1)

function runWorker(): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [...process.execArgv, new URL('./worker.ts', import.meta.url).pathname],
      {
        env: {
          ...process.env,
          STORM_URL: url,
          STORM_QUEUE: queue,
          STORM_PREFETCH: String(prefetch),
          STORM_CONCURRENCY: String(concurrency),
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    )
    let doneHere = 0
    createInterface({ input: child.stdout }).on('line', (line) => {
      const [kind, n, attempt] = line.split(' ')
      if (kind === 'READY' && killEveryMs > 0 && killed < kills) {
        setTimeout(() => {
          if (child.exitCode === null && killed < kills) {
            killed++
            child.kill('SIGKILL')
          }
        }, killEveryMs)
      }
      if (kind === 'F') bump(fetched, Number(n))
      if (kind === 'S') {
        bump(started, Number(n))
        lastAttempt.set(Number(n), Number(attempt))
      }
      if (kind === 'D') {
        finished++
        doneHere++
        if (killEveryMs === 0 && killed < kills && doneHere >= jobs / kills) {
          killed++
          child.kill('SIGKILL')
        }
      }
    })
    child.on('exit', () => resolve())
    const poll = setInterval(async () => {
      const [row] = await sql<{ n: number }>(
        `SELECT count(*)::int AS n FROM "${schema}".jobs WHERE queue = $1`,
        [queue],
      )
      if (row?.n === 0) child.kill('SIGTERM')
    }, 500)
    child.on('exit', () => clearInterval(poll))
  })
}

const app = createApp({
  broker: new PostgresBroker({ url, logger: silentLogger }),
  tasks: [work],
  logger: silentLogger,
})
try {
  await app.sendMany(Array.from({ length: jobs }, (_, i) => work.s(i)))
  const t0 = Date.now()
  for (;;) {
    await runWorker()
    const [row] = await sql<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${schema}".jobs WHERE queue = $1`,
      [queue],
    )
    if (row?.n === 0) break
  }
  const dead = await sql<{ body: Buffer; deliveries: number; reason: string }>(
    `SELECT body, deliveries, reason FROM "${schema}".dead_letters WHERE queue = $1`,
    [queue],
  )
  // Deliveries the broker counted per job: the attempt of its last start, or the dead letter's.
  const counted = new Map(lastAttempt)
  const exhausted: number[] = []
  for (const d of dead) {
    const n = Number(decodeEnvelope(d.body, 1 << 20).input)
    counted.set(n, d.deliveries)
    exhausted.push(n)
  }
  let deliveries = 0
  let reachedCore = 0
  let handlers = 0
  for (let n = 0; n < jobs; n++) {
    deliveries += counted.get(n) ?? 0
    reachedCore += fetched.get(n) ?? 0
    handlers += started.get(n) ?? 0
  }
  const neverStartedExhausted = exhausted.filter((n) => (started.get(n) ?? 0) < (counted.get(n) ?? 0))
  console.log(
    JSON.stringify(
      {
        jobs,
        kills: killed,
        prefetch,
        concurrency,
        killEveryMs,
        seconds: (Date.now() - t0) / 1000,
        finished,
        deliveriesCounted: deliveries,
        reachedCore,
        handlerStarts: handlers,
        countedButNeverReachedCore: deliveries - reachedCore,
        reachedCoreButNoHandler: reachedCore - handlers,
        deadLettered: dead.length,
        deadReasons: dead.map((d) => d.reason),
        exhaustedWithAnUnstartedDelivery: neverStartedExhausted.length,
        exhaustedStarts: exhausted.map((n) => `${started.get(n) ?? 0}/${counted.get(n)}`),
      },
      null,
      1,
    ),
  )
} finally {
  await app.close()
  await dropSchema(schema)
}
