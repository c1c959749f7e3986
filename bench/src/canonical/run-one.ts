/**
 * One measured run in a fresh process: one contender, one workload. Prints one line
 * `RESULT {json}` (a {@link RunResult}) on stdout. Spawned by run.ts; can be run by hand:
 *
 *   cd bench && node --import tsx --conditions=source src/canonical/run-one.ts \
 *     --store redis --contender errand --workload drain-c50 --n 20000
 *
 * Set-up (connect, migrate, create the queue) and worker start-up are outside the clock for every
 * contender: a drain fills N + W jobs, starts the worker and starts the clock when the W-th job
 * has been handled (W warm-up jobs), stopping it at the last; enqueue workloads send W jobs first.
 * Every run is verified: each job handled exactly once (by its number), nothing left in the store.
 *
 * Workloads: `drain-c<k>` (no-op handler), `drain-c<k>-h<ms>` (each handler waits <ms>),
 * `fail-c<k>` (every 10th job throws on its first attempt, retried once at once),
 * `open-r<rate>-c<k>` (an open-loop producer at <rate> jobs/s, worker at k, end-to-end
 * percentiles), `drain-c<k>-p<procs>` (procs worker processes at k each, multi-process.ts),
 * `enqueue-<in flight>`, `enqueue-bulk`, `latency` (one job at a time).
 */
import { loadavg } from 'node:os'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { drainAcross } from './multi-process.js'
import { Tally } from './tally.js'
import type { Contender, OnJob, Payload, RunResult, StoreModule } from './types.js'

const { values } = parseArgs({
  options: {
    store: { type: 'string' },
    contender: { type: 'string' },
    workload: { type: 'string' },
    n: { type: 'string', default: '20000' },
    payload: { type: 'string', default: '100' },
    timeout: { type: 'string', default: '600' },
    id: { type: 'string' },
  },
})

const storeName = values.store ?? 'memory'
const contenderName = values.contender ?? 'errand'
const workload = values.workload ?? 'drain-c1'
const N = Number(values.n)
const DATA = 'x'.repeat(Number(values.payload))
const TIMEOUT_MS = Number(values.timeout) * 1000
const id = (values.id ?? `${process.pid}${Math.random().toString(36).slice(2, 6)}`).replace(/[^a-z0-9]/g, '')

/** Failure path: one job in this many throws on its first attempt (10%). */
const FAIL_EVERY = 10

const payload = (n: number): Payload => ({ n, sentAt: performance.now(), data: DATA })

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i] ?? Number.NaN
}

async function fill(c: Contender, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i += 1000) {
    const chunk: Payload[] = []
    for (let j = i; j < Math.min(to, i + 1000); j++) chunk.push(payload(j))
    await c.enqueueBulk(chunk)
  }
}

type Measured = Omit<RunResult, 'contender' | 'workload' | 'pid'>

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/**
 * Drain at `concurrency`. `handlerMs` > 0: each handler waits that long after taking its job
 * (I/O-bound work). `failEvery` > 0: every job whose number is a multiple of it throws on its
 * first attempt and must come back through the library's retry (the failure path; the run
 * asked for one retry).
 */
async function drain(c: Contender, concurrency: number, handlerMs = 0, failEvery = 0): Promise<Measured> {
  const warmup = Math.max(100, 4 * concurrency)
  const total = N + warmup
  await fill(c, 0, total)
  const tally = new Tally(total)
  const failed = new Uint8Array(failEvery > 0 ? total : 0)
  let failedAttempts = 0
  const onJob: OnJob =
    failEvery === 0 && handlerMs === 0
      ? tally.on
      : (p) => {
          if (failEvery > 0 && p.n % failEvery === 0 && p.n < total && failed[p.n] === 0) {
            failed[p.n] = 1
            failedAttempts++
            throw new Error(`job ${p.n} fails its first attempt`)
          }
          tally.on(p)
          if (handlerMs > 0) return sleep(handlerMs)
        }
  await c.startWorker(concurrency, onJob)
  const warmed = await tally.until(warmup, TIMEOUT_MS)
  const start = performance.now()
  const done = warmed && (await tally.until(total, TIMEOUT_MS))
  const seconds = (performance.now() - start) / 1000
  await c.stopWorker()
  // A late duplicate would show up during the stop; count what is left in the store.
  const remaining = await c.remaining()
  const missing = total - tally.distinct
  const ok = done && missing === 0 && tally.duplicates === 0 && remaining === 0
  return {
    ok,
    ...(!ok && {
      error: `${done ? '' : 'timed out; '}handled ${tally.distinct}/${total} distinct, ${tally.duplicates} duplicates, ${remaining} left in the store`,
    }),
    jobs: N,
    seconds,
    perSecond: N / seconds,
    handled: tally.handled,
    ...(failEvery > 0 && { failedAttempts }),
    duplicates: tally.duplicates,
    missing,
    remaining,
    warmup,
  }
}

/**
 * Open loop: a producer sends N jobs one per call at `rate` per second on a fixed schedule,
 * never waiting for earlier sends (a slow store does not slow the schedule down), while a worker
 * at `concurrency` drains them. Latency is from each job's *scheduled* send time to its handler
 * (no coordinated omission: a send that starts late counts its lateness). The first W jobs
 * (one second's worth, at least 100) warm up and are not sampled.
 */
async function openLoop(c: Contender, rate: number, concurrency: number): Promise<Measured> {
  const warmup = Math.max(100, Math.round(rate))
  const total = N + warmup
  const tally = new Tally(total)
  const samples: number[] = []
  await c.startWorker(concurrency, (p) => {
    tally.on(p)
    if (p.n >= warmup) samples.push(performance.now() - p.sentAt)
  })
  const start = performance.now()
  let sent = 0
  let sendErrors = 0
  const sends: Promise<void>[] = []
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate) + 1)
    for (; sent < due; sent++) {
      const p: Payload = { n: sent, sentAt: start + (sent / rate) * 1000, data: DATA }
      sends.push(
        c.enqueueOne(p).catch(() => {
          sendErrors++
        }),
      )
    }
    if (sends.length > 10_000) await Promise.all(sends.splice(0, sends.length))
    await sleep(1)
  }
  await Promise.all(sends)
  const done = await tally.until(total, TIMEOUT_MS)
  const seconds = (performance.now() - start) / 1000
  await c.stopWorker()
  const remaining = await c.remaining()
  const sorted = samples.sort((a, b) => a - b)
  const missing = total - tally.distinct
  const ok = done && sendErrors === 0 && missing === 0 && tally.duplicates === 0 && remaining === 0
  return {
    ok,
    ...(!ok && {
      error: `${done ? '' : 'timed out; '}${sendErrors} sends failed; handled ${tally.distinct}/${total}, ${tally.duplicates} duplicates, ${remaining} left`,
    }),
    jobs: N,
    seconds,
    perSecond: total / seconds,
    targetPerSecond: rate,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    p999Ms: percentile(sorted, 99.9),
    handled: tally.handled,
    duplicates: tally.duplicates,
    missing,
    remaining,
    warmup,
  }
}

async function enqueue(c: Contender, inFlight: number): Promise<Measured> {
  const warmup = 50
  for (let i = 0; i < warmup; i++) await c.enqueueOne(payload(i))
  let next = warmup
  const total = N + warmup
  const start = performance.now()
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < total) await c.enqueueOne(payload(next++))
    }),
  )
  const seconds = (performance.now() - start) / 1000
  return verifyEnqueued(c, total, warmup, seconds)
}

async function enqueueBulk(c: Contender): Promise<Measured> {
  const warmup = 100
  await fill(c, 0, warmup)
  const total = N + warmup
  const start = performance.now()
  await fill(c, warmup, total)
  const seconds = (performance.now() - start) / 1000
  return verifyEnqueued(c, total, warmup, seconds)
}

/** After an enqueue run, the store must hold every job once: then drain it (outside the clock). */
async function verifyEnqueued(
  c: Contender,
  total: number,
  warmup: number,
  seconds: number,
): Promise<Measured> {
  const stored = await c.remaining()
  const tally = new Tally(total)
  await c.startWorker(50, tally.on)
  const done = await tally.until(total, TIMEOUT_MS)
  await c.stopWorker()
  const remaining = await c.remaining()
  const missing = total - tally.distinct
  const ok = stored === total && done && missing === 0 && tally.duplicates === 0 && remaining === 0
  return {
    ok,
    ...(!ok && {
      error: `stored ${stored}/${total}; drained ${tally.distinct} distinct, ${tally.duplicates} duplicates, ${remaining} left`,
    }),
    jobs: N,
    seconds,
    perSecond: N / seconds,
    handled: tally.handled,
    duplicates: tally.duplicates,
    missing,
    remaining,
    warmup,
  }
}

/** One job at a time: send, wait until the handler has it, 2 ms gap; concurrency 1 worker. */
async function latency(c: Contender): Promise<Measured> {
  const warmup = 50
  const total = N + warmup
  const tally = new Tally(total)
  const samples: number[] = []
  let pending: (() => void) | undefined
  await c.startWorker(1, (p) => {
    tally.on(p)
    if (p.n >= warmup) samples.push(performance.now() - p.sentAt)
    pending?.()
  })
  const start = performance.now()
  let timedOut = false
  for (let i = 0; i < total && !timedOut; i++) {
    const seen = new Promise<void>((res) => {
      pending = res
    })
    await c.enqueueOne(payload(i))
    timedOut = !(await Promise.race([
      seen.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 10_000)),
    ]))
    await new Promise((r) => setTimeout(r, 2))
  }
  const seconds = (performance.now() - start) / 1000
  await c.stopWorker()
  const remaining = await c.remaining()
  const sorted = samples.sort((a, b) => a - b)
  const missing = total - tally.distinct
  const ok = !timedOut && missing === 0 && tally.duplicates === 0 && remaining === 0
  return {
    ok,
    ...(!ok && {
      error: `${timedOut ? 'a job took over 10 s; ' : ''}handled ${tally.distinct}/${total}, ${tally.duplicates} duplicates, ${remaining} left`,
    }),
    jobs: N,
    seconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    p999Ms: percentile(sorted, 99.9),
    handled: tally.handled,
    duplicates: tally.duplicates,
    missing,
    remaining,
    warmup,
  }
}

async function measure(c: Contender): Promise<Measured> {
  const across = /^drain-c(\d+)-p(\d+)$/.exec(workload)
  if (across)
    return drainAcross(c, {
      store: storeName,
      contender: contenderName,
      id,
      concurrency: Number(across[1]),
      procs: Number(across[2]),
      n: N,
      timeoutMs: TIMEOUT_MS,
      fill,
    })
  const drainMatch = /^drain-c(\d+)(?:-h(\d+))?$/.exec(workload)
  if (drainMatch) return drain(c, Number(drainMatch[1]), Number(drainMatch[2] ?? 0))
  const failMatch = /^fail-c(\d+)$/.exec(workload)
  if (failMatch) return drain(c, Number(failMatch[1]), 0, FAIL_EVERY)
  const openMatch = /^open-r(\d+)-c(\d+)$/.exec(workload)
  if (openMatch) return openLoop(c, Number(openMatch[1]), Number(openMatch[2]))
  const enqMatch = /^enqueue-(\d+)$/.exec(workload)
  if (enqMatch) return enqueue(c, Number(enqMatch[1]))
  if (workload === 'enqueue-bulk') return enqueueBulk(c)
  if (workload === 'latency') return latency(c)
  throw new Error(`unknown workload ${workload}`)
}

const load = loadavg()[0]
let result: RunResult
const { store } = (await import(`./stores/${storeName}.js`)) as { store: StoreModule }
const c = store.create(contenderName, id, workload.startsWith('fail-') ? { retries: 1 } : {})
try {
  await c.setup()
  const m = await measure(c)
  result = { contender: contenderName, workload, pid: process.pid, ...m }
} catch (e) {
  result = {
    contender: contenderName,
    workload,
    pid: process.pid,
    ok: false,
    error: `threw: ${(e as Error).stack ?? String(e)}`.slice(0, 800),
    jobs: N,
    warmup: 0,
  }
}
try {
  await c.teardown()
} catch (e) {
  result.error = `${result.error ?? ''} teardown failed: ${(e as Error).message}`.trim()
}
process.stdout.write(`RESULT ${JSON.stringify({ ...result, loadavg1: load })}\n`)
process.exit(0)
