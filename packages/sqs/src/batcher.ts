/** Outcome of one entry of a flushed batch. */
export type EntryOutcome<R> =
  | { readonly ok: true; readonly value: R }
  | { readonly ok: false; readonly error: unknown }

/** Options of {@link Batcher}. */
export interface BatcherOptions<E, R> {
  /** Most entries per call (SQS: 10). */
  readonly maxEntries: number
  /** Most bytes per call, counted with the size given to `add` (default: unlimited). */
  readonly maxBytes?: number
  /** How long the first entry waits for company, in ms (0: until the current tick's I/O is done). */
  readonly lingerMs: number
  /** Send one batch; returns one outcome per entry, in order. A throw fails every entry. */
  readonly flush: (entries: readonly E[]) => Promise<readonly EntryOutcome<R>[]>
}

interface Pending<E, R> {
  readonly entry: E
  readonly resolve: (value: R) => void
  readonly reject: (error: unknown) => void
}

/**
 * Coalesces single operations from concurrent callers into batch calls (SendMessageBatch,
 * DeleteMessageBatch, ChangeMessageVisibilityBatch): a batch goes out when it is full or when
 * its linger ends, whichever is first. Each caller gets its own entry's outcome.
 */
export class Batcher<E, R> {
  readonly #options: BatcherOptions<E, R>
  #current: Pending<E, R>[] = []
  #bytes = 0
  #timer: NodeJS.Timeout | NodeJS.Immediate | undefined
  /** The pending timer is a setImmediate (not a linger timeout). */
  #immediate = false
  readonly #inFlight = new Set<Promise<void>>()

  constructor(options: BatcherOptions<E, R>) {
    this.#options = options
  }

  /**
   * Queue one entry; resolves with its outcome once its batch is sent. `now`: skip the linger
   * (the caller knows no other entry will join later than this turn of the event loop).
   */
  add(entry: E, size = 0, now = false): Promise<R> {
    const max = this.#options.maxBytes
    if (max !== undefined && this.#current.length > 0 && this.#bytes + size > max) this.#flushNow()
    return new Promise<R>((resolve, reject) => {
      this.#current.push({ entry, resolve, reject })
      this.#bytes += size
      if (this.#current.length >= this.#options.maxEntries) this.#flushNow()
      else if (now && !this.#immediate) {
        // Still let entries added in this same turn of the event loop join.
        this.#clearTimer()
        this.#immediate = true
        this.#timer = setImmediate(() => this.#flushNow())
      } else if (this.#timer === undefined) {
        this.#immediate = this.#options.lingerMs <= 0
        this.#timer = this.#immediate
          ? setImmediate(() => this.#flushNow())
          : setTimeout(() => this.#flushNow(), this.#options.lingerMs)
      }
    })
  }

  /** Send what is pending now and wait for every batch in flight. */
  async drain(): Promise<void> {
    this.#flushNow()
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight])
  }

  #clearTimer(): void {
    if (this.#timer === undefined) return
    if (this.#immediate) clearImmediate(this.#timer as NodeJS.Immediate)
    else clearTimeout(this.#timer as NodeJS.Timeout)
    this.#timer = undefined
    this.#immediate = false
  }

  #flushNow(): void {
    this.#clearTimer()
    const batch = this.#current
    if (batch.length === 0) return
    this.#current = []
    this.#bytes = 0
    const run = this.#send(batch)
    this.#inFlight.add(run)
    void run.finally(() => this.#inFlight.delete(run))
  }

  async #send(batch: Pending<E, R>[]): Promise<void> {
    let outcomes: readonly EntryOutcome<R>[]
    try {
      outcomes = await this.#options.flush(batch.map((p) => p.entry))
    } catch (error) {
      for (const p of batch) p.reject(error)
      return
    }
    batch.forEach((p, i) => {
      const outcome = outcomes[i]
      if (outcome === undefined) p.reject(new Error('batch returned no outcome for an entry'))
      else if (outcome.ok) p.resolve(outcome.value)
      else p.reject(outcome.error)
    })
  }
}
