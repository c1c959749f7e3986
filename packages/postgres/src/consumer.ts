import {
  type Consumer,
  type DeliveryHandler,
  type Logger,
  reconnectDelay,
  type SettleOnceDelivery,
} from '@errand/core'
import type { RetryLimit } from './connection.js'
import { PgDelivery, type PgDeliveryHost } from './delivery.js'
import type { Listener } from './listener.js'
import { ADAPTER } from './options.js'
import type { FetchedRow, JobStore } from './store.js'

/** What a consumer needs from its broker: the LISTEN connection and the store calls. */
export interface ConsumerHost {
  readonly listener: Listener
  readonly logger: Logger
  readonly store: JobStore
  /** Longest nack delay (`capabilities.maxDelayMs`). */
  readonly maxDelayMs: number
  assertOpen(what: string): void
  /** A delivery was handed out: give it back at close unless it is settled by then. */
  track(delivery: PgDelivery): void
  /** The delivery is settled (or lost): nothing to give back at close. */
  forget(delivery: PgDelivery): void
}

/** Settings of one consumer. */
export interface ConsumerSettings {
  readonly queue: string
  readonly channel: string
  readonly prefetch: number
  readonly leaseMs: number
  readonly pollIntervalMs: number
  /** Shutdown grace: how long settles keep retrying through an outage once we are canceled. */
  readonly closeTimeoutMs: number
}

const MAX_TIMER_MS = 2 ** 31 - 1
/** Fetches in flight at once per consumer: one can run while the rows of the other are worked. */
const MAX_LANES = 2
/** From this prefetch up, one fetch takes at most half of it, so that two lanes alternate. */
const SPLIT_FROM = 8

/**
 * Fetches up to the free prefetch in one statement whenever it may find work: on a NOTIFY for
 * its queue, when slots free up after a full fetch (then usually together with the acks that
 * freed them, see {@link reserveWithAcks}), at the earliest `run_at` or lease expiry it knows
 * of, and on a slow safety poll. An idle consumer runs no query until one of those.
 *
 * Slots: `held` deliveries are unsettled, `reserved` are promised to fetches in flight; new
 * rows never take `held` past the prefetch.
 */
export class PgConsumer implements Consumer, PgDeliveryHost {
  readonly adapter = ADAPTER
  readonly settings: ConsumerSettings
  private readonly host: ConsumerHost
  private readonly onDelivery: DeliveryHandler
  private held = 0
  private reserved = 0
  private readonly lanes = new Set<Promise<void>>()
  /** A NOTIFY (or poll) came while fetching: the fetch may not have seen it, look again. */
  private dirty = false
  /** The queue may hold more ready rows than we had room for. */
  private backlog = false
  private canceled = false
  private failures = 0
  private dueTimer: NodeJS.Timeout | undefined
  private pollTimer: NodeJS.Timeout | undefined
  private retryTimer: NodeJS.Timeout | undefined
  private kickScheduled = false
  /**
   * Bumped when a fetch starts. A look for the next due time counts only if no fetch started
   * while it ran: that fetch's own landing decides, from a newer snapshot.
   */
  private generation = 0
  /** Fetches in a row that found nothing although a row looked due (it was locked): back off. */
  private dueMisses = 0

  constructor(host: ConsumerHost, settings: ConsumerSettings, onDelivery: DeliveryHandler) {
    this.host = host
    this.settings = settings
    this.onDelivery = onDelivery
  }

  /** LISTENs, then fetches what is already there. */
  async start(): Promise<void> {
    await this.host.listener.listen(this.settings.channel, this.onNotify)
    this.pollTimer = setInterval(() => this.kick(), this.settings.pollIntervalMs)
    this.pollTimer.unref()
    this.kick()
  }

  async cancel(): Promise<void> {
    if (this.canceled) return
    this.canceled = true
    clearInterval(this.pollTimer)
    clearTimeout(this.dueTimer)
    clearTimeout(this.retryTimer)
    await this.host.listener.unlisten(this.settings.channel, this.onNotify)
    while (this.lanes.size > 0) await Promise.allSettled([...this.lanes])
  }

  // ---- PgDeliveryHost: what our deliveries need ----

  get queue(): string {
    return this.settings.queue
  }

  get maxDelayMs(): number {
    return this.host.maxDelayMs
  }

  assertOpen(what: string): void {
    this.host.assertOpen(what)
  }

  settleBudget(): number {
    return this.canceled ? this.settings.closeTimeoutMs : Number.POSITIVE_INFINITY
  }

  get store(): JobStore {
    return this.host.store
  }

  async ack(delivery: PgDelivery): Promise<void> {
    // With us as the owner: the ack batch may fetch our next rows in the same statement.
    await this.host.store.ack(delivery.messageId, delivery.attempt, this)
  }

  forget(delivery: PgDelivery): void {
    this.host.forget(delivery)
  }

  /** A delivery of ours stopped counting against the prefetch (core calls this once per delivery). */
  released(delivery: SettleOnceDelivery): void {
    this.held--
    // A failed settle leaves it open: still ours to give back at close.
    if (!delivery.open) this.host.forget(delivery as PgDelivery)
    if (this.backlog && !this.kickScheduled) {
      // Deferred, so that every settle of one ack batch frees its slot before we fetch.
      this.kickScheduled = true
      setImmediate(() => {
        this.kickScheduled = false
        this.kick()
      })
    }
  }

  /**
   * The broker is about to send `freed` of our acks: may it fetch for us in the same statement?
   * Answers how many rows to fetch (0: no), counting the slots those acks will free. The rows
   * come back through the returned `landed` once the acks have settled.
   */
  reserveWithAcks(
    freed: number,
  ): { limit: number; landed: (rows: FetchedRow[] | undefined) => void } | undefined {
    if (this.canceled || this.retryTimer !== undefined || !this.backlog || this.lanes.size >= MAX_LANES)
      return
    const limit = Math.min(this.settings.prefetch - this.held - this.reserved + freed, this.batchCap)
    if (limit <= 0) return
    this.reserved += limit
    this.generation++
    let finish!: () => void
    const lane = new Promise<void>((resolve) => {
      finish = resolve
    })
    this.lanes.add(lane)
    return {
      limit,
      landed: (rows) => {
        // After the acks' own settles (they free the slots these rows take).
        setImmediate(() => {
          this.reserved -= limit
          this.lanes.delete(lane)
          const done = rows === undefined ? this.afterFailure() : this.land(rows, limit)
          done.finally(finish)
        })
      },
    }
  }

  private readonly onNotify = (): void => this.kick()

  /** A fetch stops retrying once we are canceled: its rows would only be given back. */
  private readonly fetchLimit: RetryLimit = () => (this.canceled ? 0 : Number.POSITIVE_INFINITY)

  /**
   * Most rows one fetch asks for. Half the prefetch: while the database runs one lane's
   * statement (acks and the next fetch), the other lane's rows are being worked on, so the
   * process and the server overlap instead of taking turns.
   */
  private get batchCap(): number {
    const { prefetch } = this.settings
    return prefetch >= SPLIT_FROM ? Math.ceil(prefetch / 2) : prefetch
  }

  private kick(): void {
    if (this.canceled || this.retryTimer !== undefined) return
    const room = this.settings.prefetch - this.held - this.reserved
    if (room <= 0) {
      this.backlog = true
      return
    }
    const free = Math.min(room, this.batchCap)
    // A second lane only for a worthwhile batch; else wait for the one in flight.
    if (
      this.lanes.size >= MAX_LANES ||
      (this.lanes.size > 0 && free < Math.ceil(this.settings.prefetch / 4))
    ) {
      this.dirty = true
      return
    }
    this.dirty = false
    clearTimeout(this.dueTimer)
    this.dueTimer = undefined
    this.reserved += free
    this.generation++
    const lane: Promise<void> = this.host.store
      .fetch(this.settings.queue, free, this.settings.leaseMs, this.fetchLimit)
      .then(
        (rows) => {
          this.reserved -= free
          this.lanes.delete(lane)
          this.failures = 0
          return this.land(rows, free)
        },
        (err: unknown) => {
          this.reserved -= free
          this.lanes.delete(lane)
          this.backoff(err)
        },
      )
    this.lanes.add(lane)
  }

  /** Rows arrived for a fetch of `asked`: deliver them and decide what to do next. */
  private async land(rows: FetchedRow[], asked: number): Promise<void> {
    if (this.canceled) {
      if (rows.length > 0) await this.host.store.giveBack(rows).catch(() => undefined)
      return
    }
    this.deliver(rows)
    this.dueMisses = rows.length > 0 ? 0 : this.dueMisses
    if (rows.length >= asked) {
      this.backlog = true
      this.kick()
      return
    }
    this.backlog = false
    if (this.dirty) {
      this.kick()
      return
    }
    // Another lane is out: the last one to land looks for the next due time.
    if (this.lanes.size > 0) return
    // Drained for now: arm a timer for the next due row or lease expiry.
    const asOf = this.generation
    let wait: number | undefined
    try {
      wait = await this.host.store.nextDue(this.settings.queue)
    } catch {
      wait = undefined // the safety poll covers it
    }
    if (this.dirty || this.backlog) this.kick()
    else if (this.lanes.size === 0 && asOf === this.generation) {
      // Due already (it became due after our fetch began, or another fetch holds its lock):
      // look again soon, backing off if it keeps being out of reach.
      if (wait !== undefined && wait <= 1) wait = Math.min(2 ** this.dueMisses++, 1000)
      this.arm(wait)
    }
  }

  private async afterFailure(): Promise<void> {
    // The acks failed, so did our fetch; their settles freed the slots: look again.
    this.kick()
  }

  private deliver(rows: FetchedRow[]): void {
    if (rows.length > 1) rows.sort((a, b) => b.priority - a.priority || compareIds(a.id, b.id))
    for (const row of rows) {
      const delivery = new PgDelivery(this, row.id, row.deliveries, row.body)
      this.held++
      this.host.track(delivery)
      try {
        this.onDelivery(delivery)
      } catch (err) {
        this.host.logger.warn(`delivery handler threw: ${(err as Error).message}`)
      }
    }
  }

  private arm(wait: number | undefined): void {
    clearTimeout(this.dueTimer)
    this.dueTimer = undefined
    if (wait === undefined || this.canceled) return
    this.dueTimer = setTimeout(
      () => {
        this.dueTimer = undefined
        this.kick()
      },
      Math.min(Math.max(1, wait), MAX_TIMER_MS),
    )
    this.dueTimer.unref()
  }

  private backoff(err: unknown): void {
    if (this.canceled) return
    this.failures++
    const delay = reconnectDelay(this.failures)
    this.host.logger.warn(
      `fetch from queue "${this.settings.queue}" failed (${(err as Error).message}); retrying in ${delay} ms`,
    )
    clearTimeout(this.retryTimer)
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined
      this.kick()
    }, delay)
    this.retryTimer.unref()
  }
}

/** Orders decimal id strings numerically without BigInt. */
function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0)
}
