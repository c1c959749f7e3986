import type { DeadLetterInfo } from '../broker.js'
import { DeliveryLostError } from '../errors.js'
import { type DeliveryHost, SettleOnceDelivery } from '../kit/settle-once.js'
import type { MemoryQueue, StoredMessage } from './memory-queue.js'

/** What a memory delivery needs from the consumer that handed it out. */
export interface MemoryDeliveryHost extends DeliveryHost {
  readonly queue: MemoryQueue
}

/**
 * A delivery from a {@link MemoryBroker} whose capabilities turn leases off: held until settled or
 * until the broker closes. The settle rules are the kit's ({@link SettleOnceDelivery}); settling
 * after the message was taken back touches nothing (the queue's token no longer matches).
 */
export class MemoryDelivery extends SettleOnceDelivery {
  protected readonly token: number
  declare protected readonly host: MemoryDeliveryHost

  constructor(host: MemoryDeliveryHost, message: StoredMessage, token: number) {
    super(host, { messageId: message.id, body: new Uint8Array(message.body), attempt: message.deliveries })
    this.token = token
  }

  protected async storeAck(): Promise<void> {
    this.host.queue.ack(this.token)
  }

  protected async storeNack(delayMs: number): Promise<void> {
    this.host.queue.nack(this.token, delayMs)
  }

  protected async storeDeadLetter(info: DeadLetterInfo): Promise<void> {
    this.host.queue.deadLetter(this.token, info)
  }
}

/**
 * A memory delivery on a lease, which `extend` lengthens (the kit's lease rules, see
 * `LeasedDelivery`). It derives from the plain one, whose store calls it shares; only `extend`
 * and the lease watch are its own. When the lease runs out unsettled, `lost` aborts with a
 * `DeliveryLostError` and the delivery stops counting against the prefetch (after the message
 * was offered to the other consumers); settling it then resolves without effect.
 */
export class MemoryLeasedDelivery extends MemoryDelivery {
  constructor(host: MemoryDeliveryHost, message: StoredMessage, token: number) {
    super(host, message, token)
    host.queue.watchLease(token, () => this.markLost(this.#lostReason()))
  }

  /** Lengthen the lease to `ms` from now. */
  extend(ms: number): Promise<void> {
    return this.extendLease(
      ms,
      async (whole) => this.host.queue.extend(this.token, whole),
      () => this.#lostReason(),
    )
  }

  #lostReason(): DeliveryLostError {
    return new DeliveryLostError(
      `the lease of message ${this.messageId} ran out and the message was taken back (it may run again elsewhere)`,
      { adapter: 'memory' },
    )
  }
}
