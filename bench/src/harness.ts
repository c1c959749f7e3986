import { performance } from 'node:perf_hooks'
import type { BenchPayload, Contender, WorkloadName } from './contender.js'

/** Sizes of each workload. */
export interface BenchSizes {
  enqueue: number
  drain: number
  latency: number
  bulkBatch: number
}

/** One measured figure. */
export interface BenchResult {
  contender: string
  workload: WorkloadName
  /** Jobs per second, for throughput workloads. */
  perSecond?: number
  p50Ms?: number
  p99Ms?: number
  jobs: number
  seconds: number
}

const DATA = 'x'.repeat(100)

function payload(n: number): BenchPayload {
  return { n, sentAt: performance.now(), data: DATA }
}

function uniqueQueue(workload: string): string {
  return `bench-${workload}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i] ?? Number.NaN
}

async function withQueue<T>(c: Contender, workload: string, run: () => Promise<T>): Promise<T> {
  await c.open(uniqueQueue(workload))
  try {
    return await run()
  } finally {
    await c.close()
  }
}

function waitForCount(target: number, timeoutMs: number): { onJob: () => void; done: Promise<void> } {
  let count = 0
  let resolve!: () => void
  let reject!: (e: Error) => void
  const done = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  const timer = setTimeout(() => reject(new Error(`timed out at ${count}/${target} jobs`)), timeoutMs)
  return {
    onJob: () => {
      count++
      if (count === target) {
        clearTimeout(timer)
        resolve()
      }
    },
    done,
  }
}

async function enqueueOne(c: Contender, n: number): Promise<BenchResult> {
  return withQueue(c, 'enq1', async () => {
    const start = performance.now()
    for (let i = 0; i < n; i++) await c.enqueueOne(payload(i))
    const seconds = (performance.now() - start) / 1000
    return { contender: c.name, workload: 'enqueue-one', perSecond: n / seconds, jobs: n, seconds }
  })
}

async function fill(c: Contender, n: number, batch: number): Promise<void> {
  for (let i = 0; i < n; i += batch) {
    const chunk: BenchPayload[] = []
    for (let j = i; j < Math.min(n, i + batch); j++) chunk.push(payload(j))
    await c.enqueueBulk(chunk)
  }
}

async function enqueueBulk(c: Contender, n: number, batch: number): Promise<BenchResult> {
  return withQueue(c, 'enqbulk', async () => {
    const start = performance.now()
    await fill(c, n, batch)
    const seconds = (performance.now() - start) / 1000
    return { contender: c.name, workload: 'enqueue-bulk', perSecond: n / seconds, jobs: n, seconds }
  })
}

async function drain(c: Contender, n: number, batch: number, concurrency: number): Promise<BenchResult> {
  const workload: WorkloadName = concurrency === 1 ? 'drain-c1' : 'drain-c50'
  return withQueue(c, workload, async () => {
    if (c.unsupported?.includes('enqueue-bulk')) {
      for (let i = 0; i < n; i++) await c.enqueueOne(payload(i))
    } else {
      await fill(c, n, batch)
    }
    const waiter = waitForCount(n, 600_000)
    const start = performance.now()
    await c.startWorker(concurrency, waiter.onJob)
    await waiter.done
    const seconds = (performance.now() - start) / 1000
    await c.stopWorker()
    return { contender: c.name, workload, perSecond: n / seconds, jobs: n, seconds }
  })
}

async function latency(c: Contender, n: number): Promise<BenchResult> {
  return withQueue(c, 'latency', async () => {
    const samples: number[] = []
    let pending: (() => void) | undefined
    await c.startWorker(1, (p) => {
      samples.push(performance.now() - p.sentAt)
      pending?.()
    })
    const start = performance.now()
    // Low load: one job in flight at a time, a short gap between jobs.
    for (let i = 0; i < n; i++) {
      const seen = new Promise<void>((res) => {
        pending = res
      })
      await c.enqueueOne(payload(i))
      await seen
      await new Promise((r) => setTimeout(r, 2))
    }
    const seconds = (performance.now() - start) / 1000
    await c.stopWorker()
    const warm = samples.slice(Math.min(20, Math.floor(samples.length / 10))).sort((a, b) => a - b)
    return {
      contender: c.name,
      workload: 'latency',
      p50Ms: percentile(warm, 50),
      p99Ms: percentile(warm, 99),
      jobs: n,
      seconds,
    }
  })
}

/** Run one workload on one contender. */
export async function runWorkload(
  c: Contender,
  workload: WorkloadName,
  sizes: BenchSizes,
): Promise<BenchResult> {
  switch (workload) {
    case 'enqueue-one':
      return enqueueOne(c, sizes.enqueue)
    case 'enqueue-bulk':
      return enqueueBulk(c, sizes.enqueue, sizes.bulkBatch)
    case 'drain-c1':
      return drain(c, Math.max(1, Math.floor(sizes.drain / 5)), sizes.bulkBatch, 1)
    case 'drain-c50':
      return drain(c, sizes.drain, sizes.bulkBatch, 50)
    case 'latency':
      return latency(c, sizes.latency)
  }
}
