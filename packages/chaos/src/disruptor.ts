import type { CuttableProxy } from '@errand/conformance'
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
 */
export class Disruptor {
  readonly cuts: Cut[] = []
  private stopped = false
  private readonly sleepers = new Set<() => void>()
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
      const graceful = this.options.gracefulEvery > 0 && n % this.options.gracefulEvery === 0
      this.pool.disrupt(graceful ? 'SIGTERM' : 'SIGKILL')
    }
  }

  private async cutLoop(): Promise<void> {
    while (!this.stopped) {
      await this.pause(between(this.options.cutGapMs))
      if (this.stopped) break
      const from = Date.now()
      await Promise.all(this.proxies.map((p) => p.cut()))
      // A cut always lasts its full length, also when stop() comes during it.
      await new Promise((r) => setTimeout(r, between(this.options.cutLengthMs)))
      await Promise.all(this.proxies.map((p) => p.restore()))
      this.cuts.push({ from, to: Date.now() })
    }
  }
}
