import type { Consumer, DeliveryHandler, SettleOnceDelivery } from '@errand/core'
import type { ChangeFeed } from './change-feed.js'
import { type SettleOp, SqliteDelivery, type SqliteDeliveryHost } from './delivery.js'
import { ADAPTER } from './options.js'
import type { FetchedRow } from './store.js'

const MAX_TIMER_MS = 2 ** 31 - 1

/** Settings of one consumer. */
export interface ConsumerSettings {
  readonly queue: string
  readonly prefetch: number
  readonly leaseMs: number
  readonly pollIntervalMs: number
}

/** What a consumer needs from its broker. */
export interface ConsumerHost {
  readonly feed: ChangeFeed
  /** The broker's `capabilities.maxDelayMs`. */
  readonly maxDelayMs: number
  /** Throws `ERR_CLOSED` once the broker is closed. */
  assertOpen(what: string): void
  /** Run a cycle soon (settles, then fetches for consumers that want rows). */
  requestCycle(): void
  /** Queues a settle of `delivery` for the next cycle (see {@link SqliteDeliveryHost.apply}). */
  apply(consumer: SqliteConsumer | undefined, delivery: SqliteDelivery, op: SettleOp): Promise<boolean>
  /** A delivery was handed out: the broker gives it back at close unless it is settled first. */
  hold(delivery: SqliteDelivery): void
  /** A delivery is settled or no longer ours: the broker stops tracking it. */
  forget(delivery: SqliteDelivery): void
}

/** The wake-up name of a queue in the {@link ChangeFeed}. */
export function queueTopic(queue: string): string {
  return `q:${queue}`
}

/**
 * One `consume` call: its prefetch accounting and when it should look for rows. The broker's
 * cycle does the fetching (in the same transaction as the settles that freed the room).
 *
 * It looks when it may find something: a publish or a returned delivery in this process (at
 * once), a change by another process (seen through the change feed), the earliest due time or
 * lease expiry of its queue (a timer), and when slots free up while the queue had more rows than
 * it had room for. An idle consumer costs one `PRAGMA data_version` read per poll, shared by
 * every consumer of the connection.
 */
export class SqliteConsumer implements Consumer, SqliteDeliveryHost {
  readonly adapter = ADAPTER
  readonly settings: ConsumerSettings
  readonly onDelivery: DeliveryHandler
  readonly #host: ConsumerHost
  /** Deliveries handed out that count against the prefetch (core has not released them). */
  readonly #counted = new Set<SqliteDelivery>()
  /** May find rows: the next cycle fetches for it when it has room. */
  wanted = true
  canceled = false
  #backlog = false
  #dueTimer: NodeJS.Timeout | undefined
  #unsubscribe: (() => void)[] = []

  constructor(host: ConsumerHost, settings: ConsumerSettings, onDelivery: DeliveryHandler) {
    this.#host = host
    this.settings = settings
    this.onDelivery = onDelivery
  }

  /** Subscribes to wake-ups and asks for a first fetch. */
  start(): void {
    const kick = () => this.kick()
    this.#unsubscribe = [
      this.#host.feed.on(queueTopic(this.settings.queue), kick),
      this.#host.feed.onExternal(kick, this.settings.pollIntervalMs),
    ]
    this.kick()
  }

  /** Stop receiving; deliveries already handed out stay valid. */
  async cancel(): Promise<void> {
    if (this.canceled) return
    this.canceled = true
    this.wanted = false
    clearTimeout(this.#dueTimer)
    for (const unsubscribe of this.#unsubscribe) unsubscribe()
    this.#unsubscribe = []
  }

  /** Something may be there: look at the next cycle. */
  kick(): void {
    if (this.canceled) return
    this.wanted = true
    this.#host.requestCycle()
  }

  /** Free slots, counting `freed` that settles in the running cycle are giving back. */
  room(freed = 0): number {
    return this.settings.prefetch - this.#counted.size + freed
  }

  get maxDelayMs(): number {
    return this.#host.maxDelayMs
  }

  assertOpen(what: string): void {
    this.#host.assertOpen(what)
  }

  apply(delivery: SqliteDelivery, op: SettleOp): Promise<boolean> {
    // A retry after a failed settle frees no room: its slot was released when it failed.
    return this.#host.apply(this.#counted.has(delivery) ? this : undefined, delivery, op)
  }

  /** A delivery of ours stopped counting against the prefetch (core calls this once per delivery). */
  released(delivery: SettleOnceDelivery): void {
    this.#counted.delete(delivery as SqliteDelivery)
    // A delivery whose settle failed stays open (its settle may be retried): the broker keeps
    // it, to give it back at close.
    if (!delivery.open) this.#host.forget(delivery as SqliteDelivery)
    if (this.#backlog) this.kick()
  }

  /** Rows leased for a fetch of `asked`: hand them out. */
  landed(rows: readonly FetchedRow[], asked: number): void {
    for (const row of rows) this.#deliver(row)
    this.#backlog = rows.length >= asked
    if (this.#backlog) this.wanted = true
  }

  #deliver(row: FetchedRow): void {
    const { queue } = this.settings
    const delivery = new SqliteDelivery(this, {
      queue,
      id: row.id,
      deliveries: row.deliveries,
      body: row.body,
    })
    this.#counted.add(delivery)
    this.#host.hold(delivery)
    try {
      this.onDelivery(delivery)
    } catch (err) {
      // A throwing handler is the caller's bug: surface it without breaking the other deliveries.
      queueMicrotask(() => {
        throw err
      })
    }
  }

  /**
   * The queue had nothing due for us: sleep until `waitMs` (its next due time or lease expiry),
   * or until something wakes us first.
   */
  idle(waitMs: number | undefined): void {
    this.wanted = false
    this.#backlog = false
    clearTimeout(this.#dueTimer)
    this.#dueTimer = undefined
    if (waitMs === undefined || this.canceled) return
    // +1: a timer may fire a fraction of a ms early, and a row due "now" is taken at <= now.
    this.#dueTimer = setTimeout(() => this.kick(), Math.min(Math.max(1, waitMs + 1), MAX_TIMER_MS))
    this.#dueTimer.unref()
  }
}
