import type { DeadLetterInfo } from '../broker.js'
import { DeliveryLostError } from '../errors.js'
import { type DeliveryHost, LeasedDelivery, SettleOnceDelivery } from '../kit/settle-once.js'
import type { MemoryQueue, QueueConsumer, StoredMessage } from './memory-queue.js'

/** What a memory delivery needs from the consumer that handed it out. */
export interface MemoryDeliveryHost extends DeliveryHost {
  readonly queue: MemoryQueue
  readonly consumer: QueueConsumer
}

function init(message: StoredMessage) {
  return { messageId: message.id, body: new Uint8Array(message.body), attempt: message.deliveries }
}

/**
 * A delivery from a {@link MemoryBroker} whose capabilities turn leases off: held until settled or
 * until the broker closes. The settle rules are the kit's ({@link SettleOnceDelivery}); settling
 * after the message was taken back touches nothing (the queue's token no longer matches).
 */
export class MemoryDelivery extends SettleOnceDelivery {
  protected readonly token: number
  protected override readonly host: MemoryDeliveryHost

  constructor(host: MemoryDeliveryHost, message: StoredMessage, token: number) {
    super(host, init(message))
    this.host = host
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
 * A memory delivery on a lease, which `extend` lengthens. When the lease runs out unsettled,
 * `lost` aborts with a `DeliveryLostError` and the delivery stops counting against the prefetch
 * (after the message was offered to the other consumers); settling it then resolves without effect.
 */
export class MemoryLeasedDelivery extends LeasedDelivery {
  protected readonly token: number
  protected override readonly host: MemoryDeliveryHost

  constructor(host: MemoryDeliveryHost, message: StoredMessage, token: number) {
    super(host, init(message))
    this.host = host
    this.token = token
    host.queue.watchLease(token, () => this.markLost(this.lostReason()))
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

  protected async storeExtend(ms: number): Promise<boolean> {
    return this.host.queue.extend(this.token, ms)
  }

  protected lostReason(): DeliveryLostError {
    return new DeliveryLostError(
      `the lease of message ${this.messageId} ran out and the message was taken back (it may run again elsewhere)`,
      { adapter: 'memory' },
    )
  }
}
