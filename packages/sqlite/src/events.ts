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

/**
 * Events per transaction. The sink hands over what gathered in 10 ms (tens to hundreds in steady
 * state; up to 10,000 after the store was unreachable). Measured on the loaded 2-core machine:
 * 100 inserts about 0.6 ms, 500 from 6 to 30 ms (the WAL grows past a checkpoint). 200 keeps a
 * transaction near a millisecond, like the broker's cycles; the loop runs between slices.
 */
const WRITE_BATCH = 200
/**
 * Index entries one step of the search for a trim's cut-off walks (`OFFSET`, about 0.25 µs each
 * loaded: ~1 ms); a long retention is walked over several turns, never in one call.
 */
const SEEK_STEP = 5000
/** Rows one trim transaction deletes at most (200 took ~0.5 ms, 1000 took 6 to 30 ms). */
const TRIM_BATCH = 200
/** Rows one read of `recentEvents` takes; the next page is read on a later turn. */
const RECENT_PAGE = 1000

const INSERT = `INSERT INTO errand_events (queue, body) VALUES (?, ?)`
const RECENT = `SELECT id, body FROM errand_events WHERE queue = ? AND id < ? ORDER BY id DESC LIMIT ?`
/** The row `offset` places below `before` in the queue, newest first. */
const SEEK = `SELECT id FROM errand_events WHERE queue = ? AND id < ? ORDER BY id DESC LIMIT 1 OFFSET ?`
/** The oldest rows of the queue up to the cut-off, a batch. */
const TRIM = `DELETE FROM errand_events WHERE id IN (
    SELECT id FROM errand_events WHERE queue = ? AND id <= ? ORDER BY id LIMIT ${TRIM_BATCH})`

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
 * - Writing: a `publishEvents` call is one `BEGIN IMMEDIATE` transaction per 200 events, calls
 *   of one backend strictly one after another (so one process's events keep their order). The
 *   JSON is made before the lock is taken.
 * - Retention: each backend counts what it wrote per queue and, once a tenth of the retention (at
 *   least 10) has been added to a queue, trims that queue back to the retention after the insert:
 *   the cut-off found 5000 index entries per turn, then 200 rows per transaction.
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
      await this.#connection.write(
        () => this.#insert(slice),
        this.#settings.busyTimeoutMs,
        // Events are observability: they never wait for an fsync, whatever the durability.
        'NORMAL',
        (first) => this.#hub.committed(first, slice),
      )
      // Awaited, so a writer never runs ahead of its own trimming (the sink calls this in the
      // background, one call at a time; what it gathers meanwhile goes in its next call).
      for (const queue of this.#dueForTrim(slice)) await this.#trim(queue)
    }
  }

  /** Inside the transaction: the rows. Returns the first id. */
  #insert(slice: readonly OwnEvent[]): number {
    const insert = this.#connection.statement(INSERT)
    let first = 0
    for (const [i, row] of slice.entries()) {
      const id = Number(insert.run(row.event.queue, row.json).lastInsertRowid)
      // One transaction holds the write lock, so its AUTOINCREMENT ids are consecutive.
      if (i === 0) first = id
    }
    return first
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

  /**
   * Deletes the rows of `queue` past the retention: finds the newest row to drop by walking the
   * queue's index from the newest, {@link SEEK_STEP} entries per turn (reads, no lock), then
   * deletes it and everything older, {@link TRIM_BATCH} rows per short transaction. Rows added
   * meanwhile only make it keep a few more. A failure is logged: events are best effort.
   */
  async #trim(queue: string): Promise<void> {
    try {
      let cutoff = Number.MAX_SAFE_INTEGER
      // Position of `cutoff` counting from the newest row (0); the row to find is at `retention`.
      for (let position = -1; position < this.#settings.retention; ) {
        if (position >= 0) await nextTurn()
        if (this.#connection.closed) return
        const offset = Math.min(SEEK_STEP - 1, this.#settings.retention - position - 1)
        const id = this.#connection.read(
          () => this.#connection.statement(SEEK).pluck().get(queue, cutoff, offset) as number | undefined,
        )
        if (id === undefined) return // not over the retention
        cutoff = id
        position += offset + 1
      }
      for (;;) {
        const deleted = await this.#connection.write(
          () => this.#connection.statement(TRIM).run(queue, cutoff).changes,
          this.#settings.busyTimeoutMs,
        )
        if (deleted < TRIM_BATCH) return
        await nextTurn()
        if (this.#connection.closed) return
      }
    } catch (err) {
      this.#settings.logger.warn(`trimming task events of queue "${queue}" failed: ${(err as Error).message}`)
    }
  }
}
