// Crash storm: how many jobs reach maxRedeliveries on SQS without their handler ever failing,
// when workers are SIGKILLed while they work. Runs fauxqs in this process (127.0.0.1), publishes
// JOBS jobs, keeps WORKERS worker processes (crash-storm-worker.ts) consuming, and SIGKILLs one
// every JOBS/KILLS acks (20 kills per 2,000 jobs by default), starting a fresh one in its place.
//
//   pnpm --filter @errand/sqs crash-storm            # env: STORM_JOBS, STORM_KILLS, STORM_WORKERS,
//                                                    # STORM_PREFETCH, STORM_CONCURRENCY (default:
//                                                    # the prefetch), STORM_JOB_MS, STORM_LEASE_MS,
//                                                    # STORM_WAIT_SECONDS, STORM_MAX_REDELIVERIES
//
// Per job it counts receives (the highest `attempt` seen) and starts (handler runs): a receive
// that never started is a message a killed worker took without running it (a long poll still open
// on the server when its process died, or a message received in its last moment).
import { type ChildProcess, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { buildApp } from 'fauxqs'
import { SqsBroker } from '../src/index.js'

const num = (name: string, fallback: number): number => Number(process.env[name] ?? fallback)
const JOBS = num('STORM_JOBS', 2_000)
const KILLS = num('STORM_KILLS', 20)
const WORKERS = num('STORM_WORKERS', 2)
const settings = {
  STORM_PREFETCH: String(num('STORM_PREFETCH', 20)),
  STORM_CONCURRENCY: String(num('STORM_CONCURRENCY', num('STORM_PREFETCH', 20))),
  STORM_JOB_MS: String(num('STORM_JOB_MS', 50)),
  STORM_LEASE_MS: String(num('STORM_LEASE_MS', 3_000)),
  STORM_WAIT_SECONDS: String(num('STORM_WAIT_SECONDS', 20)),
  STORM_MAX_REDELIVERIES: String(num('STORM_MAX_REDELIVERIES', 5)),
}

const fauxqs = buildApp({ logger: false })
await fauxqs.listen({ port: 0, host: '127.0.0.1' })
const address = fauxqs.server.address()
if (address === null || typeof address === 'string') throw new Error('fauxqs did not bind')
const endpoint = `http://127.0.0.1:${address.port}`
const queue = `storm-${randomUUID().slice(0, 8)}`

const producer = new SqsBroker({
  endpoint,
  region: 'us-east-1',
  credentials: { accessKeyId: 'storm', secretAccessKey: 'storm' },
  waitTimeSeconds: 1,
})
await producer.connect()
const enc = new TextEncoder()
for (let i = 0; i < JOBS; i += 100) {
  await producer.publish(
    queue,
    Array.from({ length: Math.min(100, JOBS - i) }, (_, j) => ({ body: enc.encode(String(i + j)) })),
  )
}

interface Job {
  starts: number
  receives: number
  done: 'acked' | 'dead' | undefined
}
const jobs = new Map<string, Job>()
for (let i = 0; i < JOBS; i++) jobs.set(String(i), { starts: 0, receives: 0, done: undefined })
let finished = 0
let acksSinceKill = 0
let kills = 0
let ready = 0
let allDone!: () => void
const done = new Promise<void>((resolve) => {
  allDone = resolve
})

const workerScript = fileURLToPath(new URL('./crash-storm-worker.ts', import.meta.url))
const register = fileURLToPath(new URL('../../../test-support/ts-hooks.mjs', import.meta.url))
const workers = new Set<ChildProcess>()

function startWorker(): void {
  const child = spawn(
    process.execPath,
    ['--conditions=source', '--no-warnings', '--import', register, workerScript],
    {
      env: { ...process.env, ...settings, STORM_ENDPOINT: endpoint, STORM_QUEUE: queue },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  workers.add(child)
  child.once('exit', () => workers.delete(child))
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    const [kind, id, attempt] = line.split(' ')
    if (kind === 'READY') ready++
    const job = id === undefined ? undefined : jobs.get(id)
    if (job === undefined) return
    if (attempt !== undefined) job.receives = Math.max(job.receives, Number(attempt))
    if (kind === 'S') job.starts++
    if ((kind === 'A' || kind === 'D') && job.done === undefined) {
      job.done = kind === 'A' ? 'acked' : 'dead'
      if (++finished === JOBS) allDone()
    }
    if (kind === 'A' && kills < KILLS && ++acksSinceKill >= JOBS / KILLS) {
      acksSinceKill = 0
      kills++
      child.kill('SIGKILL')
      startWorker()
    }
  })
}

const started = Date.now()
for (let i = 0; i < WORKERS; i++) startWorker()
// A worker killed right after an ack took effect may not have printed it: such a job is gone from
// the queue without an `A` line. The storm is over when the queue is empty, whatever was printed.
const progress = setInterval(() => {
  const s = Math.round((Date.now() - started) / 1000)
  process.stderr.write(`${s}s: ${finished}/${JOBS} done, ${kills} kills, ${ready} workers ready\n`)
  if (finished < JOBS * 0.9) return
  void producer.stats(queue).then((st) => {
    if (st.ready + (st.inFlight ?? 0) + (st.delayed ?? 0) === 0) allDone()
  })
}, 5_000)
await done
clearInterval(progress)
const seconds = (Date.now() - started) / 1000
for (const w of workers) w.kill('SIGKILL')

const all = [...jobs.values()]
const dead = all.filter((j) => j.done === 'dead')
const ackUnseen = all.filter((j) => j.done === undefined).length
const unstarted = all.map((j) => j.receives - j.starts)
const histogram = new Map<number, number>()
for (const u of unstarted) histogram.set(u, (histogram.get(u) ?? 0) + 1)
console.log(
  JSON.stringify(
    {
      settings: { JOBS, KILLS, WORKERS, ...settings },
      kills,
      seconds,
      deadWithoutFailing: dead.length,
      ackedWithoutALine: ackUnseen,
      deadStarts: dead.map((j) => j.starts),
      receivesNeverStarted: unstarted.reduce((a, b) => a + b, 0),
      jobsByReceivesNeverStarted: Object.fromEntries([...histogram].sort((a, b) => a[0] - b[0])),
      maxReceives: Math.max(...all.map((j) => j.receives)),
    },
    null,
    2,
  ),
)
await producer.close()
await fauxqs.close()
