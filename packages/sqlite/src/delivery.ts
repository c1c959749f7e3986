import { type DeadLetterInfo, type Delivery, DeliveryLostError } from '@errand/core'

/** A change to one delivered row, applied by the broker's next cycle. */
export type SettleOp =
  | { readonly kind: 'ack' }
  | { readonly kind: 'nack'; readonly delayMs: number }
  | { readonly kind: 'dead'; readonly info: DeadLetterInfo }
  | { readonly kind: 'extend'; readonly ms: number }
  | { readonly kind: 'release' }

/** Told once per delivery when it stops counting against the prefetch. */
export interface DeliveryOwner {
  settled(): void
}

/** What a delivery needs from its broker. */
export interface DeliveryHost {
  /** Throws `ERR_CLOSED` once the broker is closed. */
  assertOpen(what: string): void
  /** Queues `op` for the next cycle; resolves once committed. */
  apply(delivery: SqliteDelivery, op: SettleOp): Promise<void>
  /** The delivery is settled (or given up on): stop tracking it. */
  forget(delivery: SqliteDelivery): void
}

/**
 * One leased row. The first of `ack`, `nack` or `deadLetter` settles it; later calls resolve
 * without effect. The lease token is the row's `deliveries` counter (= `attempt`): a settle after
 * the lease ran out and the row went to someone else matches nothing and changes nothing.
 *
 * An extend that matches no row means exactly that: `lost` aborts with a `DeliveryLostError`,
 * the delivery stops counting against the prefetch, and settling it resolves without effect
 * (after `close()` it rejects with `ERR_CLOSED`, like any settle).
 */
export class SqliteDelivery implements Delivery {
  readonly messageId: string
  readonly body: Uint8Array
  readonly attempt: number
  readonly queue: string
  /** Row id (the message id as a number). */
  readonly id: number
  readonly owner: DeliveryOwner
  /** Aborted with a `DeliveryLostError` (`ERR_LOST`) once an extend found the lease taken over. */
  readonly lost: AbortSignal
  readonly #lost = new AbortController()
  readonly #host: DeliveryHost
  #settling: Promise<void> | undefined
  #done = false
  #slotFreed = false

  constructor(
    host: DeliveryHost,
    owner: DeliveryOwner,
    queue: string,
    id: number,
    deliveries: number,
    body: Uint8Array,
  ) {
    this.#host = host
    this.owner = owner
    this.queue = queue
    this.id = id
    this.messageId = String(id)
    this.attempt = deliveries
    this.body = body
    this.lost = this.#lost.signal
  }

  /** Remove the message for good. */
  ack(): Promise<void> {
    return this.#settle('ack', { kind: 'ack' })
  }

  /** Make the message due again, after `delayMs` (default 0). */
  nack(options: { delayMs?: number } = {}): Promise<void> {
    const delayMs = options.delayMs ?? 0
    if (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0) {
      return Promise.reject(
        new TypeError(`nack: delayMs must be a finite number >= 0, got ${String(delayMs)}`),
      )
    }
    return this.#settle('nack', { kind: 'nack', delayMs: Math.ceil(delayMs) })
  }

  /** Move the message to the queue's dead letters with `info`, in the same transaction as its removal. */
  deadLetter(info: DeadLetterInfo): Promise<void> {
    if (typeof info !== 'object' || info === null || typeof info.reason !== 'string') {
      return Promise.reject(new TypeError('deadLetter: info must be an object with a reason'))
    }
    return this.#settle('deadLetter', { kind: 'dead', info })
  }

  /** Move the lease's end to `ms` from now. Without effect once settled or once the lease was lost. */
  async extend(ms: number): Promise<void> {
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) {
      throw new TypeError(`extend: ms must be a finite number > 0, got ${String(ms)}`)
    }
    this.#host.assertOpen('extend')
    // Racing a settle is normal (a heartbeat firing as the task ends): nothing to extend then.
    if (this.#done || this.#settling !== undefined) return
    await this.#host.apply(this, { kind: 'extend', ms: Math.ceil(ms) })
  }

  /**
   * Stops counting this delivery against its consumer's prefetch (once): after a settle
   * committed, or failed (the lease then brings the message back if nobody retries).
   */
  freeSlot(): void {
    if (this.#slotFreed) return
    this.#slotFreed = true
    this.owner.settled()
  }

  /**
   * An extend matched no row: the lease ran out and the row was leased again (or removed). Unless
   * a settle of ours is under way (it may be what removed the row), the message is not ours.
   */
  lose(): void {
    if (this.#done || this.#settling !== undefined) return
    this.#done = true
    this.#host.forget(this)
    this.freeSlot()
    this.#lost.abort(
      new DeliveryLostError(
        `the lease of message ${this.messageId} in queue "${this.queue}" ran out and the message was reclaimed (it may run again elsewhere)`,
        { adapter: 'sqlite' },
      ),
    )
  }

  /** Marks the delivery as no longer held without settling it (the broker gave it back). */
  abandon(): void {
    this.#done = true
  }

  #settle(what: string, op: SettleOp): Promise<void> {
    try {
      this.#host.assertOpen(what)
    } catch (err) {
      return Promise.reject(err)
    }
    if (this.#done) return Promise.resolve()
    if (this.#settling !== undefined) return this.#settling
    this.#settling = this.#host.apply(this, op).then(
      () => {
        this.#done = true
        this.#host.forget(this)
      },
      (err: unknown) => {
        // Still ours to retry; if nobody does, the lease brings the message back.
        this.#settling = undefined
        throw err
      },
    )
    return this.#settling
  }
}
