import {
  type BackendEventSubscription,
  type EventFilter,
  matchesFilter,
  parseTaskEvent,
  type TaskEvent,
} from '@errand/core'
import type { SqliteConnection } from './connection.js'
import type { SqliteLogger } from './options.js'

/** Rows one read of other processes' events takes at most; more is read on the next turn. */
const READ_PAGE = 500

const MAX_ID = `SELECT max(id) FROM errand_events`
const READ_NEW = `SELECT id, queue, body FROM errand_events WHERE id > ? ORDER BY id LIMIT ${READ_PAGE}`

interface Subscriber {
  readonly filter: EventFilter
  readonly onEvent: (event: TaskEvent) => void
  /** Deliver only rows after this id (the newest row when it subscribed). */
  readonly from: number
  readonly stopPolling: () => void
}

/** An event as written by this process: the object (for the filter) and its stored JSON. */
export interface OwnEvent {
  readonly event: TaskEvent
  readonly json: string
}

interface Row {
  readonly id: number
  readonly queue: string
  readonly body: string
}

const hubs = new WeakMap<SqliteConnection, EventHub>()

/**
 * Live task events of one connection (so of every backend of this process on that file):
 *
 * - **This process's writes** are handed over by the writer right after its commit, in the same
 *   synchronous call ({@link committed}): no read, no delay.
 * - **Other processes' writes** are read by id (`id > cursor`) whenever the connection's change
 *   feed sees another connection commit (`PRAGMA data_version`, polled every 5 ms while things
 *   change, backing off to `pollIntervalMs`). The file lock serialises commits and ids are
 *   AUTOINCREMENT, so ids become visible in increasing order: `id > cursor` misses nothing.
 *
 * `cursor` means "every row up to here was delivered". Own rows usually follow it directly and
 * just move it on; when another process's rows sit in between (committed since the last read),
 * the own range is remembered and skipped by the read that fills the gap, so every row is
 * delivered once and each writer's rows stay in order.
 */
export class EventHub {
  readonly #connection: SqliteConnection
  readonly #logger: SqliteLogger
  readonly #subscribers = new Set<Subscriber>()
  /** Own ranges [first, last] above the cursor, already delivered, in increasing order. */
  #own: [number, number][] = []
  #cursor = 0
  #reading = false

  private constructor(connection: SqliteConnection, logger: SqliteLogger) {
    this.#connection = connection
    this.#logger = logger
  }

  /** The hub of `connection` (one per connection, made on first use). */
  static of(connection: SqliteConnection, logger: SqliteLogger): EventHub {
    let hub = hubs.get(connection)
    if (hub === undefined) {
      hub = new EventHub(connection, logger)
      hubs.set(connection, hub)
    }
    return hub
  }

  /** True while someone listens (writers skip the hand-over otherwise). */
  get active(): boolean {
    return this.#subscribers.size > 0
  }

  /**
   * Live from now on. `pollIntervalMs`: the longest pause between two looks for other processes'
   * writes while this subscription is open. Synchronous: nothing committed after it returns is missed.
   */
  subscribe(
    filter: EventFilter,
    onEvent: (event: TaskEvent) => void,
    pollIntervalMs: number,
  ): BackendEventSubscription {
    // Watch data_version first, then read the newest id: a commit by another process between the
    // two is then both above `from` and a change the feed will report (the other order could lose it).
    const stopPolling = this.#connection.feed.onExternal(() => this.#scheduleRead(), pollIntervalMs)
    let from: number
    try {
      from = this.#connection.read(
        () => (this.#connection.statement(MAX_ID).pluck().get() as number | null) ?? 0,
      )
    } catch (err) {
      stopPolling()
      throw err
    }
    if (this.#subscribers.size === 0) {
      this.#cursor = from
      this.#own = []
    }
    const subscriber: Subscriber = { filter: { ...filter }, onEvent, from, stopPolling }
    this.#subscribers.add(subscriber)
    return {
      close: async () => this.#remove(subscriber),
    }
  }

  /**
   * This process committed `events` as rows `first …` (consecutive ids, one transaction). Called
   * synchronously after the commit: delivers them, then moves the cursor on or remembers the range.
   */
  committed(first: number, events: readonly OwnEvent[]): void {
    if (this.#subscribers.size === 0 || events.length === 0) return
    const last = first + events.length - 1
    for (const [i, own] of events.entries()) this.#deliver(first + i, own.event.queue, own.json, own.event)
    if (last <= this.#cursor) return
    if (first === this.#cursor + 1 && this.#own.length === 0) {
      this.#cursor = last
      return
    }
    // Rows of another process lie between the cursor and ours: read them soon, skipping ours.
    this.#own.push([first, last])
    this.#scheduleRead()
  }

  #remove(subscriber: Subscriber): void {
    if (!this.#subscribers.delete(subscriber)) return
    subscriber.stopPolling()
    if (this.#subscribers.size === 0) this.#own = []
  }

  #scheduleRead(): void {
    if (this.#reading) return
    this.#reading = true
    // One read per turn however many subscriptions were told of the same change.
    queueMicrotask(() => {
      this.#reading = false
      this.#readNew()
    })
  }

  /** Reads and delivers one page of rows after the cursor; asks for the next page on a later turn. */
  #readNew(): void {
    if (this.#subscribers.size === 0 || this.#connection.closed) return
    let rows: Row[]
    try {
      rows = this.#connection.read(() => this.#connection.statement(READ_NEW).all(this.#cursor) as Row[])
    } catch (err) {
      this.#logger.warn(`reading task events failed: ${(err as Error).message}`)
      return
    }
    for (const row of rows) {
      while (this.#own.length > 0 && (this.#own[0] as [number, number])[1] < row.id) this.#own.shift()
      const own = this.#own[0]
      if (own === undefined || row.id < own[0]) this.#deliver(row.id, row.queue, row.body, undefined)
      this.#cursor = row.id
    }
    while (this.#own.length > 0 && (this.#own[0] as [number, number])[1] <= this.#cursor) this.#own.shift()
    if (rows.length === READ_PAGE) setImmediate(() => this.#scheduleRead())
  }

  /** Calls every subscriber whose filter `id` passes; the JSON is parsed once, only if someone wants it. */
  #deliver(id: number, queue: string, json: string, original: TaskEvent | undefined): void {
    let event: TaskEvent | undefined
    for (const s of [...this.#subscribers]) {
      if (id <= s.from) continue
      if (s.filter.queues?.length && !s.filter.queues.includes(queue)) continue
      // A copy nobody else can change: the writer keeps its object, subscribers share a frozen one.
      event ??= parsed(json)
      if (event === undefined) return
      if (!matchesFilter(original ?? event, s.filter)) continue
      try {
        s.onEvent(event)
      } catch {
        // A subscriber's bug is its own; the others still get the event.
      }
    }
  }
}

function parsed(json: string): TaskEvent | undefined {
  const event = parseTaskEvent(json)
  return event === undefined ? undefined : Object.freeze(event)
}
