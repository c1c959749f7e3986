import {
  type DeadLetterInfo,
  type Delivery,
  type DeliveryLostError,
  NotSupportedError,
  type ResultBackend,
  type SetStateOptions,
  type TaskRecord,
  type TaskState,
} from '@errand/core'
import type { DecodedItem } from './codec.js'
import type { BackendLink, RecordWrite } from './same-store.js'

/** What a delivery needs from the consumer that handed it out. */
export interface DeliveryOwner {
  readonly maxDelayMs: number
  /** Throws `ERR_CLOSED` once the broker is closed. */
  assertOpen(): void
  ack(delivery: RedisDelivery): Promise<void>
  nack(delivery: RedisDelivery, delayMs: number): Promise<void>
  deadLetter(delivery: RedisDelivery, info: DeadLetterInfo): Promise<void>
  extend(delivery: RedisDelivery, ms: number): Promise<void>
  /** The backend's link when it writes where this broker does (see same-store.ts), else false. */
  sameStore(backend: unknown): BackendLink | false | Promise<BackendLink | false>
  /** Write the record and ack in one script; resolves with the state stored. */
  ackWithRecord(delivery: RedisDelivery, write: RecordWrite): Promise<string>
}

/**
 * A delivery from a {@link RedisBroker}: delivery number `attempt` of message `messageId`, on a
 * lease named `<id>:<attempt>`. The first of `ack`, `nack` or `deadLetter` that succeeds settles
 * it; later calls resolve without effect (a call made while one is on its way shares its outcome).
 * A settle that failed (Redis unreachable) leaves it unsettled, so it may be called again: every
 * script is fenced on the lease, so a retry after a reply that was lost changes nothing. Settling
 * or extending after the lease ran out (the message went back to the queue, maybe to another
 * consumer) touches nothing: the lease name no longer exists. When an extension finds the lease
 * gone, `lost` aborts with a `DeliveryLostError` (`ERR_LOST`): the delivery stops counting against
 * the prefetch and every later settle does nothing.
 * `ackWithRecord` writes a task record and acks in the consumer's next round trip (one script,
 * which also fetches the next messages) when the backend is a RedisResultBackend on the same
 * standalone server, db and key prefix.
 */
export class RedisDelivery implements Delivery {
  readonly messageId: string
  readonly body: Uint8Array
  readonly attempt: number
  /** The lease member: `<id>:<attempt>`. */
  readonly lease: string
  readonly #owner: DeliveryOwner
  #state: 'open' | 'settling' | 'settled' | 'lost' = 'open'
  /** The settle on its way, which a second call waits for. */
  #settling: Promise<void> | undefined
  readonly #lost = new AbortController()

  constructor(owner: DeliveryOwner, item: DecodedItem) {
    this.#owner = owner
    this.messageId = item.id
    this.body = item.body
    this.attempt = item.deliveries + 1
    this.lease = `${item.id}:${this.attempt}`
  }

  /** True while nothing settled it and no settle is on its way (what `close()` gives back). */
  get open(): boolean {
    return this.#state === 'open'
  }

  /** Aborted (with a `DeliveryLostError`) when an extension found the lease gone. */
  get lost(): AbortSignal {
    return this.#lost.signal
  }

  /**
   * The consumer found the lease gone while nothing settled this delivery: abort `lost`. False
   * (and nothing done) when a settle is on its way or done (then the lease went because of it).
   */
  markLost(reason: DeliveryLostError): boolean {
    if (this.#state !== 'open') return false
    this.#state = 'lost'
    this.#lost.abort(reason)
    return true
  }

  /** Remove the message for good. Acks issued in the same tick go to Redis in one call. */
  async ack(): Promise<void> {
    return this.#settle(() => this.#owner.ack(this))
  }

  /**
   * Write `record` through `backend` (a RedisResultBackend on this broker's standalone server, db
   * and key prefix) and ack, in one script: what `backend.setState` then `ack()` would do
   * (CANCELED is never overwritten, a final record is published to its waiters), atomically.
   * Resolves with the state stored; `undefined` having done nothing when the backend is elsewhere
   * (or on a cluster), or when this delivery is already settled, being settled, or lost.
   */
  async ackWithRecord(
    backend: ResultBackend,
    record: TaskRecord,
    options: SetStateOptions,
  ): Promise<TaskState | undefined> {
    if (this.#state !== 'open') {
      // As a second ack would: wait for the settle on its way, change nothing.
      if (this.#settling !== undefined) await this.#settling
      return undefined
    }
    const checked = this.#owner.sameStore(backend)
    const link = checked instanceof Promise ? await checked : checked
    if (link === false) return undefined
    const write = link.prepare(record, options)
    let stored: string | undefined
    // A settle that started while the probe ran wins: #settle then shares it (stored stays unset).
    await this.#settle(async () => {
      stored = await this.#owner.ackWithRecord(this, write)
    })
    return stored as TaskState | undefined
  }

  /** Return the message, redelivered after `delayMs` (default 0: at once, at the back). */
  async nack(options: { delayMs?: number } = {}): Promise<void> {
    const delayMs = options.delayMs ?? 0
    if (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0) {
      throw new TypeError(`nack: delayMs must be a finite number >= 0, got ${String(delayMs)}`)
    }
    if (this.#state === 'open' && delayMs > this.#owner.maxDelayMs) {
      throw new NotSupportedError(
        `nack delay of ${delayMs} ms is over maxDelayMs ${this.#owner.maxDelayMs}`,
        {
          adapter: 'redis',
        },
      )
    }
    return this.#settle(() => this.#owner.nack(this, Math.ceil(delayMs)))
  }

  /** Move the message to the queue's dead letters, atomically with its removal. */
  async deadLetter(info: DeadLetterInfo): Promise<void> {
    if (typeof info !== 'object' || info === null || typeof info.reason !== 'string') {
      throw new TypeError('deadLetter: info must be an object with a reason')
    }
    return this.#settle(() => this.#owner.deadLetter(this, info))
  }

  /** Lengthen the lease to `ms` from now. Without effect once settled or once the lease ran out. */
  async extend(ms: number): Promise<void> {
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) {
      throw new TypeError(`extend: ms must be a finite number > 0, got ${String(ms)}`)
    }
    // Racing a settle is normal (a lease timer firing as the task ends): nothing to extend then.
    if (this.#state !== 'open') return
    this.#owner.assertOpen()
    return this.#owner.extend(this, Math.ceil(ms))
  }

  #settle(run: () => Promise<void>): Promise<void> {
    if (this.#state === 'settled') return Promise.resolve()
    if (this.#state === 'lost') {
      // Nothing of ours to settle; after close() it fails like any settle.
      this.#owner.assertOpen()
      return Promise.resolve()
    }
    if (this.#settling !== undefined) return this.#settling
    this.#owner.assertOpen()
    this.#state = 'settling'
    const settling = run().then(
      () => {
        this.#state = 'settled'
        this.#settling = undefined
      },
      (err: unknown) => {
        // Not settled: the caller may try again; if nobody does, the lease brings it back.
        this.#state = 'open'
        this.#settling = undefined
        throw err
      },
    )
    this.#settling = settling
    return settling
  }
}
