import type { DeadLetterInfo, Delivery } from '../broker.js'
import { type DeliveryLostError, NotSupportedError } from '../errors.js'

/**
 * What a delivery needs from the consumer that handed it out, on every adapter. An adapter's
 * own host interface extends this one with its store calls.
 */
export interface DeliveryHost {
  /** Adapter name, for errors. */
  readonly adapter: string
  /** Longest delay `nack` may ask for (the broker's `capabilities.maxDelayMs`). */
  readonly maxDelayMs: number
  /** Throws `ERR_CLOSED` once the broker is closed; `what` names the call. */
  assertOpen(what: string): void
  /**
   * The delivery stopped counting against the consumer's prefetch, for the reason `why` (a host
   * that keeps a failed delivery for the give-back at close, or logs a lost one, reads it instead
   * of inferring it from the delivery's state). Called exactly once per delivery.
   */
  released(delivery: SettleOnceDelivery, why: ReleaseReason): void
}

/**
 * Why a delivery stopped counting against the prefetch: `settled` (a settle succeeded), `lost`
 * (the store took the message back: {@link SettleOnceDelivery.markLost}), `released` (the
 * consumer gave it back without a store call: {@link SettleOnceDelivery.release}), `failed` (a
 * settle failed; the delivery is `open` again and may be settled later).
 */
export type ReleaseReason = 'settled' | 'lost' | 'released' | 'failed'

/**
 * Where a delivery is in its life. `open`: held, nothing settled it; `settling`: a settle is on
 * its way; `settled`: done (also after `release`); `lost`: the store took it back.
 */
export type DeliveryState = 'open' | 'settling' | 'settled' | 'lost'

/** The message fields every delivery carries. */
export interface DeliveryInit {
  readonly messageId: string
  readonly body: Uint8Array
  readonly attempt: number
}

type WatchLost = (delivery: object, onLost: ((reason: DeliveryLostError) => void) | undefined) => boolean
let watchLostImpl: WatchLost

/**
 * Call `onLost` once, with the reason, when the store takes `delivery`'s message back (at once if
 * it already did), without making its `lost` signal; `undefined` stops watching. One watcher per
 * delivery (the worker running it). False, doing nothing, when `delivery` is not a
 * {@link SettleOnceDelivery} itself (a wrapper, another class) or its `lost` was replaced: then
 * watch `delivery.lost`. Core's worker uses it; not part of the kit's exports.
 */
export function watchLost(
  delivery: object,
  onLost: ((reason: DeliveryLostError) => void) | undefined,
): boolean {
  return watchLostImpl(delivery, onLost)
}

/**
 * The settle-once rules every adapter's delivery follows, written once. An adapter subclasses it
 * and implements the store calls (`storeAck`, `storeNack`, `storeDeadLetter`); it never tracks
 * settle state itself.
 *
 * The rules, pinned by the conformance suite:
 * - Arguments are checked first, whatever the state: a bad `delayMs` or `info` is a `TypeError`,
 *   a delay over `maxDelayMs` is `ERR_NOT_SUPPORTED`.
 * - Any call after the broker closed rejects with `ERR_CLOSED`.
 * - The first settle that succeeds settles it; a settle called while one is on its way shares
 *   its outcome; a settle after it settled (or after it was lost) resolves and does nothing.
 * - A settle that fails leaves the delivery `open`, so the caller may settle it again (store
 *   calls are fenced, so retrying after a reply that was lost changes nothing), and releases
 *   its prefetch slot at once: the store brings the message back by itself (lease expiry or
 *   connection close) if nobody settles it, so an outage cannot fill the prefetch with
 *   deliveries nobody can settle.
 * - `markLost` (the store took the message back) aborts `lost` with the reason and releases the
 *   slot; it does nothing once a settle started (that settle is why the message left).
 */
export abstract class SettleOnceDelivery implements Delivery {
  readonly messageId: string
  readonly body: Uint8Array
  readonly attempt: number
  protected readonly host: DeliveryHost
  /** Made when `lost` is first read: most deliveries are never lost and nobody reads it. */
  #lost: AbortController | undefined
  /** Why the store took the message back, once it did. */
  #lostReason: DeliveryLostError | undefined
  /** The one watcher {@link watchLost} set (the worker running it). */
  #onLost: ((reason: DeliveryLostError) => void) | undefined
  #state: DeliveryState = 'open'
  #settling: Promise<void> | undefined
  #released = false

  constructor(host: DeliveryHost, init: DeliveryInit) {
    this.host = host
    this.messageId = init.messageId
    this.body = init.body
    this.attempt = init.attempt
  }

  /**
   * Aborted, with a `DeliveryLostError`, once the store took the message back. Its
   * AbortController is made on first read (an AbortController per delivery is a measurable
   * share of a fast store's cost). Assignable, so a wrapper that copies a delivery's fields (or
   * derives from it with `Object.create`) may replace it; a wrapper that does not reads the
   * wrapped delivery's signal.
   */
  get lost(): AbortSignal {
    // A wrapper derived from this delivery (`Object.create(d)`) has no private fields of its own.
    if (!(#state in this)) return (Object.getPrototypeOf(this) as SettleOnceDelivery).lost
    if (this.#lost === undefined) {
      this.#lost = new AbortController()
      if (this.#lostReason !== undefined) this.#lost.abort(this.#lostReason)
    }
    return this.#lost.signal
  }

  set lost(signal: AbortSignal) {
    Object.defineProperty(this, 'lost', {
      value: signal,
      writable: true,
      enumerable: true,
      configurable: true,
    })
  }

  static {
    watchLostImpl = (delivery, onLost) => {
      if (!(#state in delivery) || Object.hasOwn(delivery, 'lost')) return false
      const d = delivery as SettleOnceDelivery
      d.#onLost = onLost
      if (onLost !== undefined && d.#lostReason !== undefined) onLost(d.#lostReason)
      return true
    }
  }

  /** Where this delivery is in its life. */
  get state(): DeliveryState {
    return this.#state
  }

  /** True while nothing settled it and no settle is on its way (what a closing consumer gives back). */
  get open(): boolean {
    return this.#state === 'open'
  }

  /** Remove the message for good. */
  ack(): Promise<void> {
    return this.settle('ack', () => this.storeAck())
  }

  /** Give the message back, delivered again after `delayMs` (default 0). */
  nack(options: { delayMs?: number } = {}): Promise<void> {
    const delayMs = options?.delayMs ?? 0
    if (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0) {
      return Promise.reject(
        new TypeError(`nack: delayMs must be a finite number >= 0, got ${String(delayMs)}`),
      )
    }
    if (delayMs > this.host.maxDelayMs) {
      return Promise.reject(
        new NotSupportedError(`nack delay of ${delayMs} ms is over maxDelayMs ${this.host.maxDelayMs}`, {
          adapter: this.host.adapter,
        }),
      )
    }
    return this.settle('nack', () => this.storeNack(Math.ceil(delayMs)))
  }

  /** Move the message to its queue's dead letters, atomically with its removal. */
  deadLetter(info: DeadLetterInfo): Promise<void> {
    if (typeof info !== 'object' || info === null || typeof info.reason !== 'string') {
      return Promise.reject(new TypeError('deadLetter: info must be an object with a reason'))
    }
    return this.settle('deadLetter', () => this.storeDeadLetter(info))
  }

  /**
   * The store took the message back while it was held (lease reclaimed, channel closed, receipt
   * refused): abort `lost` with `reason` and release the slot. False, doing nothing, once a
   * settle started or ended (then the settle is why the message left).
   */
  markLost(reason: DeliveryLostError): boolean {
    if (this.#state !== 'open') return false
    this.#state = 'lost'
    this.#signalLost(reason)
    this.#release('lost')
    return true
  }

  /**
   * The consumer gave the message back without a store call of this delivery (the broker's
   * close, a channel that closed): it counts as settled from now on. False when it was not open.
   */
  release(): boolean {
    if (this.#state !== 'open') return false
    this.#state = 'settled'
    this.#release('released')
    return true
  }

  /**
   * Run `run` as this delivery's one settle, under the rules above. Subclasses use it for settle
   * kinds of their own (an ack that also writes a record, a give-back).
   */
  protected settle(what: string, run: () => Promise<void>): Promise<void> {
    try {
      this.host.assertOpen(what)
    } catch (err) {
      return Promise.reject(err)
    }
    if (this.#state === 'settled' || this.#state === 'lost') return Promise.resolve()
    if (this.#settling !== undefined) return this.#settling
    this.#state = 'settling'
    const settling = run().then(
      () => {
        this.#settling = undefined
        // The run itself may have found the message gone (markLost is refused while settling).
        this.#state = 'settled'
        this.#release('settled')
      },
      (err: unknown) => {
        this.#settling = undefined
        this.#state = 'open'
        this.#release('failed')
        throw err
      },
    )
    this.#settling = settling
    return settling
  }

  /** The message is no longer ours, found by the store call of a settle on its way. */
  protected lostDuringSettle(reason: DeliveryLostError): void {
    if (this.#lostReason === undefined) this.#signalLost(reason)
  }

  #signalLost(reason: DeliveryLostError): void {
    this.#lostReason = reason
    this.#lost?.abort(reason)
    const onLost = this.#onLost
    this.#onLost = undefined
    onLost?.(reason)
  }

  #release(why: ReleaseReason): void {
    if (this.#released) return
    this.#released = true
    this.host.released(this, why)
  }

  /**
   * The lease rules of {@link LeasedDelivery.extend}, for a delivery class that adds `extend` to
   * a non-leased class of its own (memory derives its leased delivery from its plain one):
   * arguments checked, `ERR_CLOSED` after close, nothing once settled or lost, and `lostReason()`
   * when `storeExtend` says the lease is gone.
   */
  protected async extendLease(
    ms: number,
    storeExtend: (ms: number) => Promise<boolean>,
    lostReason: () => DeliveryLostError,
  ): Promise<void> {
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) {
      throw new TypeError(`extend: ms must be a finite number > 0, got ${String(ms)}`)
    }
    this.host.assertOpen('extend')
    if (this.state !== 'open') return
    const held = await storeExtend(Math.ceil(ms))
    // Unless a settle of ours started meanwhile (it may be what removed the message), the
    // message is no longer ours.
    if (!held) this.markLost(lostReason())
  }

  /** Delete the message from the store, fenced on this delivery. */
  protected abstract storeAck(): Promise<void>
  /** Put the message back, due in `delayMs` (whole ms, checked), fenced on this delivery. */
  protected abstract storeNack(delayMs: number): Promise<void>
  /** Move the message to the dead letters with `info`, fenced on this delivery. */
  protected abstract storeDeadLetter(info: DeadLetterInfo): Promise<void>
}

/**
 * A {@link SettleOnceDelivery} held on a lease (Redis, PostgreSQL, SQLite, SQS, memory):
 * `extend` lengthens it. Extending after the delivery settled or was lost resolves and does
 * nothing (a lease timer firing as the task ends is normal); after close it rejects with
 * `ERR_CLOSED`. When the store says the lease is gone, the delivery is marked lost with the
 * reason `lostReason()` gives.
 */
export abstract class LeasedDelivery extends SettleOnceDelivery {
  /** Lengthen the lease to `ms` from now. */
  extend(ms: number): Promise<void> {
    return this.extendLease(
      ms,
      (whole) => this.storeExtend(whole),
      () => this.lostReason(),
    )
  }

  /** Lengthen the lease; false when the store no longer holds it for this delivery. */
  protected abstract storeExtend(ms: number): Promise<boolean>
  /** The error `lost` aborts with when the lease was found gone. */
  protected abstract lostReason(): DeliveryLostError
}
