import {
  type BackendEventSubscription,
  type EventFilter,
  type EventStore,
  parseTaskEvent,
  type TaskEvent,
} from '@errand/core'
import type { SqliteConnection } from './connection.js'
import { EventHub, type OwnEvent } from './event-hub.js'
import type { SqliteLogger } from './options.js'

/** Default events kept per queue. */
export const DEFAULT_EVENT_RETENTION = 1000
/**
 * Largest `eventRetention`. A trim finds its cut-off with `OFFSET retention` on the queue's index,
 * a walk of `retention` entries inside the write transaction: at 100,000 that is a few ms, once
 * per tenth of the retention written. Larger would hold the lock (and the event loop) too long.
 */
export const MAX_EVENT_RETENTION = 100_000

/**
 * Events per transaction. The sink hands over what gathered in 10 ms (hundreds at most in steady
 * state; up to 10,000 after the store was unreachable): 500 inserts take about a millisecond, in
 * line with the broker's cycles (at most 500 rows per consumer), and the loop runs between slices.
 */
const WRITE_BATCH = 500
/** Rows one trim deletes at most; a queue with more to drop is trimmed again in its own transaction. */
const TRIM_BATCH = 1000
/** Rows one read of `recentEvents` takes; the next page is read on a later turn. */
const RECENT_PAGE = 1000

const INSERT = `INSERT INTO errand_events (queue, body) VALUES (?, ?)`
const RECENT = `SELECT id, body FROM errand_events WHERE queue = ? AND id < ? ORDER BY id DESC LIMIT ?`
// The cut-off is the newest row to drop (the one just past the retention, counting from the
// newest); older ones go, TRIM_BATCH at a time, oldest first.
const TRIM = `DELETE FROM errand_events WHERE id IN (
    SELECT id FROM errand_events WHERE queue = @queue AND id <= (
      SELECT id FROM errand_events WHERE queue = @queue ORDER BY id DESC LIMIT 1 OFFSET @keep)
    ORDER BY id LIMIT @limit)`

/** Settings of {@link SqliteEvents}. */
export interface SqliteEventsSettings {
  readonly retention: number
  readonly busyTimeoutMs: number
  readonly pollIntervalMs: number
  readonly logger: SqliteLogger
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

/**
 * Task events in `errand_events` (one row per event: queue and JSON), for one result backend.
 *
 * - Writing: a `publishEvents` call is one `BEGIN IMMEDIATE` transaction per 500 events, calls
 *   of one backend strictly one after another (so one process's events keep their order). The
 *   JSON is made before the lock is taken.
 * - Retention: each backend counts what it wrote per queue and, once a tenth of the retention (at
 *   least 10) has been added to a queue, trims that queue back to the retention inside the same
 *   transaction (at most 1000 rows; the rest in further short transactions).
 * - Live: see {@link EventHub} (in-process at once, other processes through `data_version`).
 * - History: `recentEvents` reads the queue's newest rows on its index, 1000 per turn.
 */
export class SqliteEvents implements EventStore {
  readonly #connection: SqliteConnection
  readonly #hub: EventHub
  readonly #settings: SqliteEventsSettings
  readonly #trimEvery: number
  readonly #sinceTrim = new Map<string, number>()
  readonly #subscriptions = new Set<BackendEventSubscription>()
  #chain: Promise<void> = Promise.resolve()

  constructor(connection: SqliteConnection, settings: SqliteEventsSettings) {
    this.#connection = connection
    this.#settings = settings
    this.#hub = EventHub.of(connection, settings.logger)
    this.#trimEvery = Math.max(10, Math.floor(settings.retention / 10))
  }

  /** Stores the batch (in order, after any earlier call of this instance) and hands it to live readers. */
  publishEvents(events: readonly TaskEvent[]): Promise<void> {
    if (events.length === 0) return Promise.resolve()
    const rows: OwnEvent[] = events.map((event) => ({ event, json: JSON.stringify(event) }))
    const run = this.#chain.then(() => this.#write(rows))
    this.#chain = run.catch(() => undefined)
    return run
  }

  /** Live from now on, from every process on the file. */
  async subscribeEvents(
    filter: EventFilter,
    onEvent: (event: TaskEvent) => void,
  ): Promise<BackendEventSubscription> {
    const inner = this.#hub.subscribe(filter, onEvent, this.#settings.pollIntervalMs)
    const subscription: BackendEventSubscription = {
      close: async () => {
        this.#subscriptions.delete(subscription)
        await inner.close()
      },
    }
    this.#subscriptions.add(subscription)
    return subscription
  }

  /** The last `limit` events of `queue`, oldest first. */
  async recentEvents(queue: string, limit: number): Promise<TaskEvent[]> {
    const newestFirst: string[] = []
    let before = Number.MAX_SAFE_INTEGER
    while (newestFirst.length < limit) {
      if (newestFirst.length > 0) await nextTurn()
      const page = Math.min(RECENT_PAGE, limit - newestFirst.length)
      const rows = this.#connection.read(
        () => this.#connection.statement(RECENT).all(queue, before, page) as { id: number; body: string }[],
      )
      for (const row of rows) newestFirst.push(row.body)
      const last = rows[rows.length - 1]
      if (last === undefined || rows.length < page) break
      before = last.id
    }
    const out: TaskEvent[] = []
    for (let i = newestFirst.length - 1; i >= 0; i--) {
      const event = parseTaskEvent(newestFirst[i] as string)
      if (event !== undefined) out.push(event)
    }
    return out
  }

  /** Ends this backend's subscriptions and waits for its writes (the backend closes). */
  async close(): Promise<void> {
    await Promise.all([...this.#subscriptions].map((s) => s.close()))
    await this.#chain
  }

  async #write(rows: readonly OwnEvent[]): Promise<void> {
    for (let i = 0; i < rows.length; i += WRITE_BATCH) {
      if (i > 0) await nextTurn()
      const slice = rows.length <= WRITE_BATCH ? rows : rows.slice(i, i + WRITE_BATCH)
      const due = this.#dueForTrim(slice)
      const { more } = await this.#connection.write(
        () => this.#insert(slice, due),
        this.#settings.busyTimeoutMs,
        // Events are observability: they never wait for an fsync, whatever the durability.
        'NORMAL',
        ({ first }) => this.#hub.committed(first, slice),
      )
      for (const queue of more) await this.#trimRest(queue)
    }
  }

  /** Inside the transaction: the rows, then the trims due. Returns the first id and the queues left over the retention. */
  #insert(slice: readonly OwnEvent[], due: readonly string[]): { first: number; more: string[] } {
    const insert = this.#connection.statement(INSERT)
    let first = 0
    for (const [i, row] of slice.entries()) {
      const id = Number(insert.run(row.event.queue, row.json).lastInsertRowid)
      // One transaction holds the write lock, so its AUTOINCREMENT ids are consecutive.
      if (i === 0) first = id
    }
    const more = due.filter((queue) => this.#trim(queue) >= TRIM_BATCH)
    return { first, more }
  }

  /** Queues of `slice` that have had a tenth of the retention added since their last trim. */
  #dueForTrim(slice: readonly OwnEvent[]): string[] {
    const due: string[] = []
    for (const { event } of slice) {
      const n = (this.#sinceTrim.get(event.queue) ?? 0) + 1
      if (n >= this.#trimEvery) {
        this.#sinceTrim.set(event.queue, 0)
        due.push(event.queue)
      } else this.#sinceTrim.set(event.queue, n)
    }
    return due
  }

  #trim(queue: string): number {
    return this.#connection.statement(TRIM).run({ queue, keep: this.#settings.retention, limit: TRIM_BATCH })
      .changes
  }

  /** A queue still over the retention after a full trim batch: further batches, one transaction each. */
  async #trimRest(queue: string): Promise<void> {
    for (;;) {
      await nextTurn()
      if (this.#connection.closed) return
      const deleted = await this.#connection.write(() => this.#trim(queue), this.#settings.busyTimeoutMs)
      if (deleted < TRIM_BATCH) return
    }
  }
}
