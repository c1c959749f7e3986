/** How many expired rows (or keys) of each kind one sweep deleted. */
export type SweepCounts = Readonly<Record<string, number>>

/** What an {@link ExpirySweep} runs, and how often. */
export interface ExpirySweepOptions {
  /** Least ms between two sweeps; 0 turns the background sweep off (the store sweeps on request). */
  readonly intervalMs: number
  /**
   * Rows of one kind a sweep deletes at most: a sweep that deleted that many of any kind left
   * more behind, so the next write sweeps again at once.
   */
  readonly batch: number
  /** Delete a batch of expired rows of each kind; how many of each went. */
  readonly sweep: () => Promise<SweepCounts>
  /** A sweep failed (it is tried again after the next interval): log it. */
  readonly onError: (err: unknown) => void
}

/**
 * The background deletion of expired rows of a store whose reads filter on an expiry column
 * (PostgreSQL, SQLite): swept after writes, at most one sweep at a time, at most one per
 * interval, the first at the first write (a short-lived process sweeps at least once), again at
 * once while batches come back full. No timer: an idle store has nothing new to expire.
 *
 * @example
 * ```ts
 * const sweeper = new ExpirySweep({ intervalMs: 60_000, batch: 1000, sweep: () => this.cleanup(), onError })
 * await this.writeRecord(record)
 * sweeper.afterWrite()
 * ```
 */
export class ExpirySweep {
  readonly #options: ExpirySweepOptions
  #last = Number.NEGATIVE_INFINITY
  #running = false
  #stopped = false

  constructor(options: ExpirySweepOptions) {
    this.#options = options
  }

  /** Called after a write: starts a sweep when one is due (never waits for it, never throws). */
  afterWrite(now = Date.now()): void {
    const { intervalMs, batch, sweep, onError } = this.#options
    if (intervalMs === 0 || this.#running || this.#stopped) return
    if (now - this.#last < intervalMs) return
    this.#last = now
    this.#running = true
    let counts: Promise<SweepCounts>
    try {
      counts = sweep()
    } catch (err) {
      counts = Promise.reject(err)
    }
    counts
      .then((n) => {
        // A full batch means more is waiting: let the next write sweep again at once.
        if (Object.values(n).some((count) => count >= batch)) this.#last = Number.NEGATIVE_INFINITY
      })
      .catch(onError)
      .finally(() => {
        this.#running = false
      })
  }

  /** No more background sweeps (the store is closing). */
  stop(): void {
    this.#stopped = true
  }
}
