import type { EventStore, TaskEvent } from './events.js'
import type { Logger } from './logger.js'

/** Events waiting for the store at most; past it the oldest are dropped (the store is down). */
export const MAX_PENDING_EVENTS = 10_000

/**
 * Events wait this long for company before they go to the store, ms. Measured on the Redis bench
 * (2 cores shared with Redis, `enqueue-one` sends one at a time): writing each turn's events at
 * once (one store call per send) cost about half the send rate; gathering 10 ms makes it one store
 * call per ~50 sends. Observers see events up to 10 ms later; that is all it costs.
 */
export const EVENT_FLUSH_MS = 10
/** A batch this large goes out at once, without waiting for the timer. */
const FLUSH_AT = 500

/** How long `app.close()` waits for the last events to reach the store, ms. */
export const EVENT_CLOSE_FLUSH_MS = 2_000

/** How often a failing store is reported in the log, at most. */
const REPORT_EVERY_MS = 30_000

/**
 * Where the worker and `send` put events: a batching writer in front of an {@link EventStore}.
 *
 * `emit` only appends to an array (a few tens of nanoseconds: the hot path never waits for the
 * store). The events of up to {@link EVENT_FLUSH_MS} go to the store as one `publishEvents` call
 * (on Redis one script call, on Postgres one statement), and only one call is in flight at a
 * time, so the events one process emits reach the store in the order they were emitted.
 * Events are observability, not state: a store that fails loses the batch (logged at most every
 * 30 s) and never fails a task or a send.
 */
export class EventSink {
  readonly #store: EventStore
  readonly #logger: Logger
  #pending: TaskEvent[] = []
  #flushing: Promise<void> | undefined
  #timer: NodeJS.Timeout | undefined
  #lastReport = 0
  #lost = 0

  constructor(store: EventStore, logger: Logger) {
    this.#store = store
    this.#logger = logger
  }

  /** Queue one event for the store. */
  emit(event: TaskEvent): void {
    if (this.#pending.length >= MAX_PENDING_EVENTS) {
      this.#pending.shift()
      this.#lost++
    }
    this.#pending.push(event)
    if (this.#flushing !== undefined) return // the batch in flight takes what is pending next
    if (this.#pending.length >= FLUSH_AT) {
      clearTimeout(this.#timer)
      this.#timer = undefined
      void this.#run()
    } else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined
        void this.#run()
      }, EVENT_FLUSH_MS)
      // A process that exits without closing its app loses at most these 10 ms of events.
      this.#timer.unref()
    }
  }

  /**
   * Resolves once every event emitted so far has been handed to the store (or given up on), or
   * after `timeoutMs`: then what is still pending is dropped and counted. `app.close()` flushes with
   * a bound, so a store that is down (whose calls wait out their reconnect patience) cannot hold
   * a shutdown: events are best effort, a bounded close is not.
   */
  async flush(timeoutMs = Number.POSITIVE_INFINITY): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    let timedOut = false
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<void>((resolve) => {
      if (!Number.isFinite(timeoutMs)) return
      timer = setTimeout(() => {
        timedOut = true
        resolve()
      }, timeoutMs)
      timer.unref()
    })
    try {
      while (!timedOut && (this.#pending.length > 0 || this.#flushing !== undefined)) {
        await Promise.race([this.#flushing ?? this.#run(), deadline])
      }
    } finally {
      clearTimeout(timer)
    }
    if (timedOut) {
      const dropped = this.#pending.length
      this.#pending = []
      this.#logger.warn(
        `the event store did not take the last events within ${timeoutMs} ms; ${dropped} pending event(s) dropped at close`,
      )
    }
  }

  #run(): Promise<void> {
    if (this.#flushing !== undefined) return this.#flushing
    if (this.#pending.length === 0) return Promise.resolve()
    const batch = this.#pending
    this.#pending = []
    this.#flushing = this.#store
      .publishEvents(batch)
      .catch((err: unknown) => this.#report(err, batch.length))
      .finally(() => {
        this.#flushing = undefined
        // What arrived while this batch was in flight goes next, in order.
        if (this.#pending.length > 0 && this.#timer === undefined) void this.#run()
      })
    return this.#flushing
  }

  #report(err: unknown, count: number): void {
    this.#lost += count
    const now = Date.now()
    if (now - this.#lastReport < REPORT_EVERY_MS) return
    this.#lastReport = now
    this.#logger.warn(`could not store ${this.#lost} task event(s); events are best effort`, {
      error: String(err),
    })
    this.#lost = 0
  }
}
