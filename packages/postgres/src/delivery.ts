import { type DeadLetterInfo, type Delivery, DeliveryLostError } from '@errand/core'
import type { RetryLimit } from './connection.js'

/** What a delivery needs from its broker. */
export interface DeliveryHost {
  assertOpen(what: string): void
  ackJob(id: string, deliveries: number, owner: DeliveryOwner): Promise<void>
  nackJob(queue: string, id: string, deliveries: number, delayMs: number, limit: RetryLimit): Promise<void>
  deadLetterJob(id: string, deliveries: number, info: DeadLetterInfo, limit: RetryLimit): Promise<void>
  /** False when no row matched `(id, deliveries)` with a lease: the lease was lost. */
  extendJob(id: string, deliveries: number, ms: number, limit: RetryLimit): Promise<boolean>
  /** The delivery is settled (or given up on): stop tracking it. */
  forget(delivery: PgDelivery): void
}

/** Told once per delivery when it stops counting against the prefetch. */
export interface DeliveryOwner {
  settled(): void
  /**
   * How long (ms) one settle of our deliveries may keep retrying through an outage: no bound of
   * ours while consuming (the broker's `reconnectTimeoutMs` applies); the shutdown grace once
   * the consumer was canceled (the lease brings back what could not be settled, so a stopping
   * worker need not wait out a long outage).
   */
  settleBudget(): number
}

/**
 * One leased row. Its lease token is the row's `deliveries` counter at fetch time: every new
 * delivery increments it, so settling a delivery whose lease ran out and was handed to another
 * consumer matches no row and leaves the new holder's copy alone.
 *
 * An extend that matches no row means exactly that: `lost` aborts with a `DeliveryLostError`,
 * the delivery stops counting against the prefetch, and settling it resolves without effect
 * (after `close()` it rejects with `ERR_CLOSED`, like any settle).
 */
export class PgDelivery implements Delivery {
  readonly messageId: string
  readonly body: Uint8Array
  readonly attempt: number
  readonly queue: string
  /** Aborted with a `DeliveryLostError` (`ERR_LOST`) once an extend found the lease taken over. */
  readonly lost: AbortSignal
  private readonly lostController = new AbortController()
  /** Set once a settle resolved, or failed for good (the lease then runs out on its own). */
  private done = false
  private inFlight: Promise<void> | undefined
  /** The prefetch slot was given back (exactly once). */
  private slotFreed = false
  private readonly host: DeliveryHost
  private readonly owner: DeliveryOwner
  private readonly limit: RetryLimit = () => this.owner.settleBudget()

  constructor(
    host: DeliveryHost,
    owner: DeliveryOwner,
    queue: string,
    id: string,
    deliveries: number,
    body: Uint8Array,
  ) {
    this.host = host
    this.owner = owner
    this.queue = queue
    this.messageId = id
    this.attempt = deliveries
    this.body = body
    this.lost = this.lostController.signal
  }

  ack(): Promise<void> {
    return this.settle('ack', () => this.host.ackJob(this.messageId, this.attempt, this.owner))
  }

  nack(options: { delayMs?: number } = {}): Promise<void> {
    const delayMs = options.delayMs ?? 0
    if (!Number.isFinite(delayMs) || delayMs < 0) {
      return Promise.reject(new TypeError(`nack delayMs must be a finite number >= 0, got ${delayMs}`))
    }
    return this.settle('nack', () =>
      this.host.nackJob(this.queue, this.messageId, this.attempt, delayMs, this.limit),
    )
  }

  deadLetter(info: DeadLetterInfo): Promise<void> {
    return this.settle('deadLetter', () =>
      this.host.deadLetterJob(this.messageId, this.attempt, info, this.limit),
    )
  }

  async extend(ms: number): Promise<void> {
    if (!Number.isFinite(ms) || ms <= 0) throw new TypeError(`extend ms must be a positive number, got ${ms}`)
    this.host.assertOpen('extend')
    // Racing a settle is normal (a heartbeat firing as the task ends): nothing to extend then.
    if (this.done || this.inFlight !== undefined) return
    const held = await this.host.extendJob(this.messageId, this.attempt, ms, this.limit)
    // No row: the lease ran out and the row was leased again (or purged). Unless a settle of
    // ours started meanwhile (it may be what removed the row), the message is no longer ours.
    if (!held && !this.done && this.inFlight === undefined) this.lose()
  }

  /** Marks the delivery as no longer held without touching the store (close() released it). */
  abandon(): void {
    this.finish()
  }

  private lose(): void {
    this.finish()
    this.lostController.abort(
      new DeliveryLostError(
        `the lease of message ${this.messageId} in queue "${this.queue}" ran out and the message was reclaimed (it may run again elsewhere)`,
        { adapter: 'postgres' },
      ),
    )
  }

  private settle(what: string, run: () => Promise<void>): Promise<void> {
    try {
      this.host.assertOpen(what)
    } catch (err) {
      return Promise.reject(err)
    }
    // Settling twice is harmless: the second call does nothing (waits for the first, if running).
    if (this.done) return Promise.resolve()
    if (this.inFlight !== undefined) return this.inFlight.then(() => undefined)
    this.inFlight = run().then(
      () => {
        this.inFlight = undefined
        this.finish()
      },
      (err: unknown) => {
        // Still ours to retry; but stop counting it against the prefetch, since the lease will
        // bring it back if nobody settles it.
        this.inFlight = undefined
        this.freeSlot()
        throw err
      },
    )
    return this.inFlight
  }

  private finish(): void {
    if (this.done) return
    this.done = true
    this.host.forget(this)
    this.freeSlot()
  }

  private freeSlot(): void {
    if (this.slotFreed) return
    this.slotFreed = true
    this.owner.settled()
  }
}
