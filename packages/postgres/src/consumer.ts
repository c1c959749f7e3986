import type { Consumer, DeliveryHandler } from '@errand/core'
import { type DeliveryHost, type DeliveryOwner, PgDelivery } from './delivery.js'
import type { Listener } from './listener.js'
import type { PostgresLogger } from './options.js'

/** A row as the fetch statement returns it. */
export interface FetchedRow {
  readonly id: string
  readonly deliveries: number
  readonly priority: number
  readonly body: Uint8Array
}

/** What a consumer needs from its broker. */
export interface ConsumerHost extends DeliveryHost {
  readonly listener: Listener
  readonly logger: PostgresLogger
  fetchJobs(queue: string, limit: number, leaseMs: number): Promise<FetchedRow[]>
  /** Ms until the next delayed row is due or a lease runs out; undefined when none. */
  nextDue(queue: string): Promise<number | undefined>
  /** Give back rows fetched after cancel(). */
  releaseRows(rows: readonly FetchedRow[]): Promise<void>
  track(delivery: PgDelivery): void
}

/** Settings of one consumer. */
export interface ConsumerSettings {
  readonly queue: string
  readonly channel: string
  readonly prefetch: number
  readonly leaseMs: number
  readonly pollIntervalMs: number
}

const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * Fetches up to the free prefetch in one statement whenever it may find work: on a NOTIFY for
 * its queue, when slots free up after a full fetch, at the earliest `run_at` or lease expiry it
 * knows of, and on a slow safety poll. An idle consumer runs no query until one of those.
 */
export class PgConsumer implements Consumer, DeliveryOwner {
  private readonly host: ConsumerHost
  private readonly settings: ConsumerSettings
  private readonly onDelivery: DeliveryHandler
  private held = 0
  private fetching: Promise<void> | undefined
  /** Something happened during a fetch that the fetch may not have seen: look again. */
  private dirty = false
  /** The queue may hold more ready rows than we had room for. */
  private backlog = false
  private canceled = false
  private failures = 0
  private dueTimer: NodeJS.Timeout | undefined
  private pollTimer: NodeJS.Timeout | undefined
  private retryTimer: NodeJS.Timeout | undefined
  private kickScheduled = false

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
    await this.fetching
  }

  /** A delivery of ours stopped counting against the prefetch. */
  settled(): void {
    this.held--
    if (this.backlog && !this.kickScheduled) {
      // Deferred, so that every settle of one ack batch frees its slot before we fetch.
      this.kickScheduled = true
      setImmediate(() => {
        this.kickScheduled = false
        this.kick()
      })
    }
  }

  private readonly onNotify = (): void => this.kick()

  private kick(): void {
    if (this.canceled || this.retryTimer !== undefined) return
    if (this.fetching) {
      this.dirty = true
      return
    }
    if (this.held >= this.settings.prefetch) {
      this.backlog = true
      return
    }
    this.fetching = this.run().finally(() => {
      this.fetching = undefined
      if (this.dirty) this.kick()
    })
  }

  private async run(): Promise<void> {
    const { queue, prefetch, leaseMs } = this.settings
    while (!this.canceled) {
      this.dirty = false
      const free = prefetch - this.held
      if (free <= 0) {
        this.backlog = true
        return
      }
      let rows: FetchedRow[]
      try {
        rows = await this.host.fetchJobs(queue, free, leaseMs)
        this.failures = 0
      } catch (err) {
        this.backoff(err)
        return
      }
      if (this.canceled) {
        if (rows.length > 0) await this.host.releaseRows(rows).catch(() => undefined)
        return
      }
      this.deliver(rows)
      if (rows.length >= free) continue
      this.backlog = false
      if (this.dirty) continue
      let wait: number | undefined
      try {
        wait = await this.host.nextDue(queue)
      } catch {
        wait = undefined // the safety poll covers it
      }
      if (this.dirty) continue
      this.arm(wait)
      return
    }
  }

  private deliver(rows: FetchedRow[]): void {
    if (rows.length > 1) rows.sort((a, b) => b.priority - a.priority || compareIds(a.id, b.id))
    for (const row of rows) {
      const delivery = new PgDelivery(this.host, this, this.settings.queue, row.id, row.deliveries, row.body)
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
    const delay = Math.min(100 * 2 ** (this.failures - 1), 5000)
    this.host.logger.warn(
      `fetch from queue "${this.settings.queue}" failed (${(err as Error).message}); retrying in ${delay} ms`,
    )
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
