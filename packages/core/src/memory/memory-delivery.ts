import type { DeadLetterInfo, Delivery } from '../broker.js'
import { NotSupportedError } from '../errors.js'
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
 * to the queue, maybe to another consumer) frees this consumer's prefetch slot and touches
 * nothing else. After the broker closed, an unsettled delivery rejects with `ERR_CLOSED`: its
 * message was already returned to the queue.
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
    this.#settled = true
    this.source.consumer.unsettled--
    apply()
    this.source.queue.wake()
  }
}

/** A {@link MemoryDelivery} on a lease, which `extend` lengthens. */
export class MemoryLeasedDelivery extends MemoryDelivery {
  /**
   * Lengthen the lease to `ms` from now. Without effect once settled or once the lease has run
   * out (the message is back on the queue).
   */
  async extend(ms: number): Promise<void> {
    if (typeof ms !== 'number' || !(ms > 0) || !Number.isFinite(ms)) {
      throw new TypeError(`extend: ms must be a finite number > 0, got ${String(ms)}`)
    }
    if (this.settled) return
    this.source.assertOpen()
    this.source.queue.extend(this.token, ms)
  }
}
