/** Runs one batch; answers one result per item, in order. */
export type BatchFlush<T, R> = (items: T[]) => Promise<R[]>

/** Options of {@link Batcher}. */
export interface BatcherOptions<T> {
  /** Most items per statement (default 1000). */
  readonly maxBatch?: number
  /** Statements in flight at once (default 2). */
  readonly maxInFlight?: number
  /**
   * Items with the same key never share a statement (e.g. two writes to one row): a batch takes
   * the first of each key, later ones wait for a later batch, so each key keeps call order.
   */
  readonly key?: (item: T) => string
}

interface Pending<T, R> {
  readonly item: T
  readonly resolve: (value: R) => void
  readonly reject: (err: unknown) => void
}

/**
 * Coalesces calls into one statement per round trip: calls made in the same I/O turn, or while
 * the previous batches are on their way, go out together. Each call still resolves only when
 * its own batch committed, with its own result. This is how acks and result writes cost one
 * commit per batch instead of one per job.
 */
export class Batcher<T, R> {
  private readonly flush: BatchFlush<T, R>
  private readonly maxBatch: number
  private readonly maxInFlight: number
  private readonly key: ((item: T) => string) | undefined
  private pending: Pending<T, R>[] = []
  private inFlight = 0
  private scheduled = false
  private idle: Array<() => void> = []

  constructor(flush: BatchFlush<T, R>, options: BatcherOptions<T> = {}) {
    this.flush = flush
    this.maxBatch = options.maxBatch ?? 1000
    this.maxInFlight = options.maxInFlight ?? 2
    this.key = options.key
  }

  /** Queues one item; resolves with its result once its batch committed. */
  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject })
      this.schedule()
    })
  }

  /** Resolves once nothing is pending or in flight. */
  drained(): Promise<void> {
    if (this.pending.length === 0 && this.inFlight === 0) return Promise.resolve()
    return new Promise((resolve) => this.idle.push(resolve))
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.maxInFlight) return
    this.scheduled = true
    // setImmediate, not a microtask: every call of this I/O turn joins the batch.
    setImmediate(() => {
      this.scheduled = false
      this.run()
    })
  }

  private take(): Pending<T, R>[] {
    const key = this.key
    if (key === undefined) {
      const batch = this.pending.slice(0, this.maxBatch)
      this.pending = this.pending.slice(batch.length)
      return batch
    }
    const batch: Pending<T, R>[] = []
    const rest: Pending<T, R>[] = []
    const seen = new Set<string>()
    for (const p of this.pending) {
      const k = key(p.item)
      // A key seen once (taken or left behind) leaves all its later items behind too.
      if (batch.length < this.maxBatch && !seen.has(k)) batch.push(p)
      else rest.push(p)
      seen.add(k)
    }
    this.pending = rest
    return batch
  }

  private run(): void {
    if (this.pending.length === 0 || this.inFlight >= this.maxInFlight) {
      this.checkIdle()
      return
    }
    const batch = this.take()
    this.inFlight++
    this.flush(batch.map((p) => p.item)).then(
      (results) => {
        this.inFlight--
        for (const [i, p] of batch.entries()) p.resolve(results[i] as R)
        this.after()
      },
      (err: unknown) => {
        this.inFlight--
        for (const p of batch) p.reject(err)
        this.after()
      },
    )
    if (this.pending.length > 0) this.schedule()
  }

  private after(): void {
    if (this.pending.length > 0) this.schedule()
    else this.checkIdle()
  }

  private checkIdle(): void {
    if (this.pending.length > 0 || this.inFlight > 0) return
    const waiters = this.idle
    this.idle = []
    for (const w of waiters) w()
  }
}
