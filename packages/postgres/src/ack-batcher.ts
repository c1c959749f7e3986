/** One ack waiting for its batch. */
interface PendingAck {
  readonly id: string
  readonly deliveries: number
  readonly resolve: () => void
  readonly reject: (err: unknown) => void
}

/** Runs one batch: delete these (id, deliveries) pairs. */
export type AckFlush = (ids: string[], deliveries: number[]) => Promise<void>

/**
 * Coalesces acks into one `DELETE … WHERE (id, deliveries) IN unnest(…)` per round trip: acks
 * made in the same tick, or while the previous batch is on its way, go out together. Each ack
 * still resolves only when its batch committed.
 */
export class AckBatcher {
  private readonly flush: AckFlush
  private readonly maxBatch: number
  private pending: PendingAck[] = []
  private inFlight = 0
  private readonly maxInFlight: number
  private scheduled = false
  private idle: Array<() => void> = []

  constructor(flush: AckFlush, options: { maxBatch?: number; maxInFlight?: number } = {}) {
    this.flush = flush
    this.maxBatch = options.maxBatch ?? 1000
    this.maxInFlight = options.maxInFlight ?? 2
  }

  /** Queues an ack; resolves when its DELETE committed. */
  add(id: string, deliveries: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ id, deliveries, resolve, reject })
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
    // setImmediate, not a microtask: lets every ack of this I/O turn join the batch.
    setImmediate(() => {
      this.scheduled = false
      this.run()
    })
  }

  private run(): void {
    if (this.pending.length === 0 || this.inFlight >= this.maxInFlight) {
      this.checkIdle()
      return
    }
    const batch = this.pending.length <= this.maxBatch ? this.pending : this.pending.slice(0, this.maxBatch)
    this.pending = this.pending.length <= this.maxBatch ? [] : this.pending.slice(this.maxBatch)
    this.inFlight++
    const ids = batch.map((a) => a.id)
    const deliveries = batch.map((a) => a.deliveries)
    this.flush(ids, deliveries).then(
      () => {
        this.inFlight--
        for (const a of batch) a.resolve()
        this.after()
      },
      (err: unknown) => {
        this.inFlight--
        for (const a of batch) a.reject(err)
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
