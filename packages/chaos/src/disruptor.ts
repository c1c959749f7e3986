import type { CuttableProxy } from '@errand/conformance'
import { RECONNECT_SLACK_MS } from './duplicates.js'
import type { WorkerPool } from './worker-pool.js'

/** One connection cut: every proxy down from `from` to `to` (ms since epoch). */
export interface Cut {
  readonly from: number
  readonly to: number
}

/** How often and how hard to disrupt. */
export interface DisruptOptions {
  /** Mean time between worker stops, ms (each is 0.5–1.5 × this). */
  readonly killEveryMs: number
  /** Every n-th stop is a graceful SIGTERM instead of a SIGKILL (0: never). */
  readonly gracefulEvery: number
  /** Time between cuts, ms: uniform in [min, max]. */
  readonly cutGapMs: readonly [number, number]
  /** Length of a cut, ms: uniform in [min, max]. */
  readonly cutLengthMs: readonly [number, number]
}

const between = ([min, max]: readonly [number, number]) => min + Math.random() * (max - min)

/**
 * Kills workers and cuts connections until `stop()`: a random worker is stopped about every
 * `killEveryMs` (the pool replaces it), and every few seconds all proxies are cut for 0.5–2 s.
 * `stop()` restores the proxies and resolves once both loops have ended.
 *
 * Graceful stops get a calm window: one is made only when no cut is on and the last one ended
 * more than the reconnect slack ago, and no cut starts until that worker has exited. A task that
 * runs again after such a stop cannot blame a lost connection: it is a defect of the graceful path.
 */
export class Disruptor {
  readonly cuts: Cut[] = []
  private stopped = false
  private readonly sleepers = new Set<() => void>()
  private cutting = false
  /** A graceful stop waits for calm; cuts hold off until it is made and its worker has exited. */
  private gracefulDue = false
  private lastCutEnd = 0
  private loops: Promise<void>[] = []

  constructor(
    private readonly pool: WorkerPool,
    private readonly proxies: readonly CuttableProxy[],
    private readonly options: DisruptOptions,
  ) {}

  start(): void {
    this.loops = [this.killLoop(), this.cutLoop()]
  }

  async stop(): Promise<void> {
    this.stopped = true
    for (const wake of [...this.sleepers]) wake()
    await Promise.all(this.loops)
    await Promise.all(this.proxies.map((p) => p.restore()))
  }

  /** Sleep that `stop()` cuts short. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.sleepers.delete(done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.sleepers.add(done)
    })
  }

  private async killLoop(): Promise<void> {
    let n = 0
    while (!this.stopped) {
      await this.pause(this.options.killEveryMs * (0.5 + Math.random()))
      if (this.stopped) break
      n++
      if (this.options.gracefulEvery > 0 && n % this.options.gracefulEvery === 0) this.gracefulDue = true
      const calm = !this.cutting && Date.now() - this.lastCutEnd > RECONNECT_SLACK_MS
      if (this.gracefulDue && calm && this.pool.disrupt('SIGTERM')) this.gracefulDue = false
      else this.pool.disrupt('SIGKILL')
    }
  }

  private async cutLoop(): Promise<void> {
    while (!this.stopped) {
      await this.pause(between(this.options.cutGapMs))
      // Not while a graceful stop waits or is under way (bounded: a stuck worker is the pool's to report).
      for (let i = 0; i < 300 && (this.gracefulDue || this.pool.terminating > 0) && !this.stopped; i++) {
        await this.pause(100)
      }
      if (this.stopped) break
      this.cutting = true
      const from = Date.now()
      await Promise.all(this.proxies.map((p) => p.cut()))
      // A cut always lasts its full length, also when stop() comes during it.
      await new Promise((r) => setTimeout(r, between(this.options.cutLengthMs)))
      await Promise.all(this.proxies.map((p) => p.restore()))
      this.cuts.push({ from, to: Date.now() })
      this.cutting = false
      this.lastCutEnd = Date.now()
    }
  }
}
