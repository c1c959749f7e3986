import type { DeadLetterInfo, Delivery } from '../broker.js'
import { DeliveryLostError, NotSupportedError } from '../errors.js'
import type { MemoryQueue, QueueConsumer, StoredMessage } from './memory-queue.js'

/** What a delivery needs from the broker that handed it out. */
export interface DeliverySource {
  readonly queue: MemoryQueue
  readonly consumer: QueueConsumer
  readonly maxDelayMs: number
  /** Throws `ClosedError` once the broker is closed. */
  assertOpen(): void
}

/**
 * A delivery from a {@link MemoryBroker}. The first of `ack`, `nack` or `deadLetter` settles it;
 * later calls resolve without effect. Settling after the lease ran out (the message went back
 * to the queue, maybe to another consumer) touches nothing. After the broker closed, an
 * unsettled delivery rejects with `ERR_CLOSED`: its message was already returned to the queue.
 */
export class MemoryDelivery implements Delivery {
  readonly messageId: string
  readonly body: Uint8Array
  readonly attempt: number
  protected readonly source: DeliverySource
  protected readonly token: number
  #settled = false

  constructor(source: DeliverySource, message: StoredMessage, token: number) {
    this.source = source
    this.token = token
    this.messageId = message.id
    this.body = new Uint8Array(message.body)
    this.attempt = message.deliveries
  }

  /** Remove the message for good. */
  async ack(): Promise<void> {
    this.#settle(() => this.source.queue.ack(this.token))
  }

  /** Return the message, redelivered after `delayMs` (default 0, at most `maxDelayMs`). */
  async nack(options: { delayMs?: number } = {}): Promise<void> {
    const delayMs = options.delayMs ?? 0
    if (typeof delayMs !== 'number' || !(delayMs >= 0) || !Number.isFinite(delayMs)) {
      throw new TypeError(`nack: delayMs must be a finite number >= 0, got ${String(delayMs)}`)
    }
    if (!this.#settled && delayMs > this.source.maxDelayMs) {
      throw new NotSupportedError(
        `nack delay of ${delayMs} ms is over maxDelayMs ${this.source.maxDelayMs}`,
        {
          adapter: 'memory',
        },
      )
    }
    this.#settle(() => this.source.queue.nack(this.token, delayMs))
  }

  /** Move the message to the queue's dead letters with `info`. */
  async deadLetter(info: DeadLetterInfo): Promise<void> {
    if (typeof info !== 'object' || info === null || typeof info.reason !== 'string') {
      throw new TypeError('deadLetter: info must be an object with a reason')
    }
    this.#settle(() => this.source.queue.deadLetter(this.token, info))
  }

  /** True once settled by this holder (whether or not the lease had run out). */
  protected get settled(): boolean {
    return this.#settled
  }

  #settle(apply: () => void): void {
    if (this.#settled) return
    this.source.assertOpen()
    this.#release()
    apply()
  }

  /** Marks the delivery settled and frees its prefetch slot (once); false if it already was. */
  protected release(): boolean {
    if (this.#settled) return false
    this.#release()
    return true
  }

  #release(): void {
    this.#settled = true
    this.source.consumer.unsettled--
    this.source.queue.wake()
  }
}

/**
 * A {@link MemoryDelivery} on a lease, which `extend` lengthens. When the lease runs out unsettled,
 * `lost` aborts with a `DeliveryLostError` and the delivery stops counting against the prefetch
 * (after the message was offered to the other consumers); settling it then resolves without effect.
 */
export class MemoryLeasedDelivery extends MemoryDelivery {
  /** Aborted with a `DeliveryLostError` (`ERR_LOST`) once the lease ran out unsettled. */
  readonly lost: AbortSignal
  readonly #lost = new AbortController()

  constructor(source: DeliverySource, message: StoredMessage, token: number) {
    super(source, message, token)
    this.lost = this.#lost.signal
    source.queue.watchLease(token, () => this.#lose())
  }

  /**
   * Lengthen the lease to `ms` from now. Without effect once settled or once the lease has run
   * out (the message is back on the queue: the delivery is then lost, if it was not yet).
   */
  async extend(ms: number): Promise<void> {
    if (typeof ms !== 'number' || !(ms > 0) || !Number.isFinite(ms)) {
      throw new TypeError(`extend: ms must be a finite number > 0, got ${String(ms)}`)
    }
    if (this.settled) return
    this.source.assertOpen()
    if (!this.source.queue.extend(this.token, ms)) this.#lose()
  }

  #lose(): void {
    if (!this.release()) return
    this.#lost.abort(
      new DeliveryLostError(
        `the lease of message ${this.messageId} ran out and the message was taken back (it may run again elsewhere)`,
        { adapter: 'memory' },
      ),
    )
  }
}
