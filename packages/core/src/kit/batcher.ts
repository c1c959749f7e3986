/** Outcome of one item of a flushed batch. */
export type BatchOutcome<R> =
  | { readonly ok: true; readonly value: R }
  | { readonly ok: false; readonly error: unknown }

/** Runs one batch; answers one outcome per item, in order. A throw fails every item of it. */
export type BatchFlush<T, R> = (items: readonly T[]) => Promise<readonly BatchOutcome<R>[]>

/** Options of {@link Batcher}. */
export interface BatcherOptions<T, R> {
  /** Sends one batch. */
  readonly flush: BatchFlush<T, R>
  /** Most items per batch (default 1000; SQS: 10). */
  readonly maxItems?: number
  /** Most bytes per batch, counted with the sizes given to `add` (default: no limit). */
  readonly maxBytes?: number
  /** Batches on their way at once; more items wait and go together (default: no limit). */
  readonly maxInFlight?: number
  /**
   * How long the first item waits for company, in ms. 0 (default): until the current turn of
   * the event loop's I/O is done (`setImmediate`), so every call of that turn joins.
   */
  readonly lingerMs?: number
  /**
   * Items with the same key never share a batch (two writes to one row): a batch takes the
   * first of each key and later ones wait for a later batch, so each key keeps call order.
   */
  readonly key?: (item: T) => string
}

interface Pending<T, R> {
  readonly item: T
  readonly size: number
  readonly resolve: (value: R) => void
  readonly reject: (err: unknown) => void
}

/** Every item succeeded with its value: the outcomes of a flush that has one result per item. */
export function batchOk<R>(values: readonly R[]): BatchOutcome<R>[] {
  return values.map((value) => ({ ok: true, value }))
}

/**
 * Coalesces single calls from concurrent callers into one store call per batch (one statement,
 * one `SendMessageBatch`): a batch goes out when it is full, or when the first item's linger
 * ends, or when a batch on its way returns. Each caller still resolves only when its own batch
 * is done, with its own item's outcome. This is how acks and result writes cost one round trip
 * per batch instead of one per job.
 */
export class Batcher<T, R> {
  readonly #flush: BatchFlush<T, R>
  readonly #maxItems: number
  readonly #maxBytes: number
  readonly #maxInFlight: number
  readonly #lingerMs: number
  readonly #key: ((item: T) => string) | undefined
  #pending: Pending<T, R>[] = []
  #bytes = 0
  #inFlight = 0
  #timer: NodeJS.Timeout | NodeJS.Immediate | undefined
  #immediate = false
  #idle: Array<() => void> = []

  constructor(options: BatcherOptions<T, R>) {
    this.#flush = options.flush
    this.#maxItems = options.maxItems ?? 1000
    this.#maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY
    this.#maxInFlight = options.maxInFlight ?? Number.POSITIVE_INFINITY
    this.#lingerMs = options.lingerMs ?? 0
    this.#key = options.key
  }

  /**
   * Queue one item of `size` bytes; resolves with its outcome once its batch is done. `now`:
   * skip the linger (the caller knows nothing will join later than this turn of the event loop).
   */
  add(item: T, size = 0, now = false): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      // A batch that this item would push past maxBytes goes out without it.
      if (this.#pending.length > 0 && this.#bytes + size > this.#maxBytes) this.#run()
      this.#pending.push({ item, size, resolve, reject })
      this.#bytes += size
      if (this.#pending.length >= this.#maxItems) this.#run()
      else this.#schedule(now)
    })
  }

  /**
   * Send everything pending now, without waiting for the linger (a store that closes); resolves
   * once nothing is pending or on its way. Under `maxInFlight`, what does not fit goes as soon
   * as a batch returns, as always. Items that fail reject their own callers, not this call.
   */
  flush(): Promise<void> {
    this.#run()
    return this.drained()
  }

  /** Resolves once nothing is pending or on its way. */
  drained(): Promise<void> {
    if (this.#pending.length === 0 && this.#inFlight === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }

  #schedule(now: boolean): void {
    if (this.#pending.length === 0) return
    const immediate = now || this.#lingerMs <= 0
    if (this.#timer !== undefined) {
      if (!immediate || this.#immediate) return
      clearTimeout(this.#timer as NodeJS.Timeout)
    }
    this.#immediate = immediate
    const fire = (): void => {
      this.#timer = undefined
      this.#run()
    }
    this.#timer = immediate ? setImmediate(fire) : setTimeout(fire, this.#lingerMs)
  }

  #clearTimer(): void {
    if (this.#timer === undefined) return
    if (this.#immediate) clearImmediate(this.#timer as NodeJS.Immediate)
    else clearTimeout(this.#timer as NodeJS.Timeout)
    this.#timer = undefined
  }

  #take(): Pending<T, R>[] {
    const batch: Pending<T, R>[] = []
    const rest: Pending<T, R>[] = []
    const seen = this.#key === undefined ? undefined : new Set<string>()
    let bytes = 0
    for (const p of this.#pending) {
      const k = seen === undefined ? undefined : this.#key!(p.item)
      const fits =
        batch.length < this.#maxItems &&
        (batch.length === 0 || bytes + p.size <= this.#maxBytes) &&
        (k === undefined || !seen!.has(k))
      // Without keys, an item left behind keeps every later one behind too (call order).
      if (fits && (rest.length === 0 || k !== undefined)) {
        batch.push(p)
        bytes += p.size
      } else rest.push(p)
      // A key seen once (taken or left behind) leaves all its later items behind too.
      if (k !== undefined) seen!.add(k)
    }
    this.#pending = rest
    this.#bytes -= bytes
    return batch
  }

  #run(): void {
    this.#clearTimer()
    while (this.#pending.length > 0 && this.#inFlight < this.#maxInFlight) {
      const batch = this.#take()
      this.#inFlight++
      this.#send(batch)
    }
    this.#checkIdle()
  }

  #send(batch: Pending<T, R>[]): void {
    let flushing: Promise<readonly BatchOutcome<R>[]>
    try {
      flushing = this.#flush(batch.map((p) => p.item))
    } catch (err) {
      flushing = Promise.reject(err)
    }
    flushing.then(
      (outcomes) => {
        this.#inFlight--
        for (const [i, p] of batch.entries()) {
          const o = outcomes[i]
          if (o === undefined)
            p.reject(new Error(`batch flush returned ${outcomes.length} outcomes for ${batch.length} items`))
          else if (o.ok) p.resolve(o.value)
          else p.reject(o.error)
        }
        this.#after()
      },
      (err: unknown) => {
        this.#inFlight--
        for (const p of batch) p.reject(err)
        this.#after()
      },
    )
  }

  #after(): void {
    // Items that waited for a free slot have waited long enough: send them this turn.
    if (this.#pending.length > 0) this.#schedule(true)
    else this.#checkIdle()
  }

  #checkIdle(): void {
    if (this.#pending.length > 0 || this.#inFlight > 0) return
    const waiters = this.#idle
    this.#idle = []
    for (const w of waiters) w()
  }
}
