/**
 * The parent side of a multi-process drain (`drain-c<k>-p<procs>`): fill the queue, fork `procs`
 * worker processes (worker-process.ts) at concurrency k each, time from the report that shows
 * W handled jobs (summed over the processes' 5 ms reports) to the last job, then stop them and
 * verify the union of what they handled: every job exactly once, nothing left in the store.
 * The clock uses the processes' own times of their last handled job (epoch ms, sub-ms), and the
 * rate counts the jobs handled after the start report, so the report interval does not bias it;
 * a drain shorter than a few report intervals (a raw floor draining 20,000 jobs in 10 ms) is
 * still only as exact as those reports.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Tally } from './tally.js'
import type { Contender, RunResult } from './types.js'
import type { WorkerMessage } from './worker-process.js'

type Measured = Omit<RunResult, 'contender' | 'workload' | 'pid'>

/** What the parent passes on to each worker process. */
export interface Across {
  readonly store: string
  readonly contender: string
  readonly id: string
  readonly concurrency: number
  readonly procs: number
  readonly n: number
  readonly timeoutMs: number
  /** Fills the queue with jobs `from` … `to - 1`. */
  readonly fill: (c: Contender, from: number, to: number) => Promise<void>
}

const WORKER = fileURLToPath(new URL('./worker-process.ts', import.meta.url))

export async function drainAcross(c: Contender, a: Across): Promise<Measured> {
  const warmup = Math.max(100, 4 * a.concurrency * a.procs)
  const total = a.n + warmup
  await a.fill(c, 0, total)
  const counts = new Array<number>(a.procs).fill(0)
  const lastAts = new Array<number>(a.procs).fill(0)
  let atStart = 0
  const lists: (readonly number[])[] = []
  const errors: string[] = []
  let start = 0
  let end = 0
  let onProgress: () => void = () => {}
  const children: ChildProcess[] = []
  const readies: Promise<void>[] = []
  for (let i = 0; i < a.procs; i++) {
    const child = fork(
      WORKER,
      ['--store', a.store, '--contender', a.contender, '--id', a.id, '--concurrency', String(a.concurrency)],
      { execArgv: ['--import', 'tsx', '--conditions=source'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] },
    )
    children.push(child)
    readies.push(
      new Promise<void>((resolve) => {
        child.on('message', (m: WorkerMessage) => {
          if (m.kind === 'ready') resolve()
          else if (m.kind === 'count') {
            counts[i] = m.handled
            lastAts[i] = m.lastAt
            onProgress()
          } else if (m.kind === 'done') lists[i] = m.handled
          else {
            errors.push(m.error)
            resolve()
            onProgress()
          }
        })
        child.on('exit', () => resolve())
      }),
    )
  }
  await Promise.all(readies)
  const sum = () => counts.reduce((x, y) => x + y, 0)
  const finished = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), a.timeoutMs)
    onProgress = () => {
      if (errors.length > 0) {
        clearTimeout(timer)
        resolve(false)
        return
      }
      const s = sum()
      if (start === 0 && s >= warmup) {
        start = Math.max(...lastAts)
        atStart = s
      }
      if (s >= total) {
        end = Math.max(...lastAts)
        clearTimeout(timer)
        resolve(true)
      }
    }
    if (errors.length > 0) {
      clearTimeout(timer)
      resolve(false)
    }
  })
  const exits = children.map((ch) => new Promise<void>((r) => ch.once('exit', () => r())))
  for (const ch of children) ch.send('stop')
  await Promise.all(exits)
  const tally = new Tally(total)
  for (const list of lists) for (const n of list ?? []) tally.see(n)
  const { distinct, duplicates, handled } = tally
  const remaining = await c.remaining()
  const missing = total - distinct
  const seconds = (end - start) / 1000
  // Warm-up and the last job in one report: too fast for this clock.
  const timed = end > start
  const ok =
    timed &&
    finished &&
    errors.length === 0 &&
    lists.length === a.procs &&
    missing === 0 &&
    duplicates === 0 &&
    remaining === 0
  return {
    ok,
    ...(!ok && {
      error: `${finished ? '' : 'timed out; '}${timed ? '' : 'drained within one report interval; '}${errors.join('; ').slice(0, 300)} handled ${distinct}/${total} distinct, ${duplicates} duplicates, ${remaining} left in the store`,
    }),
    jobs: a.n,
    seconds,
    perSecond: (total - atStart) / seconds,
    handled,
    duplicates,
    missing,
    remaining,
    warmup,
  }
}
