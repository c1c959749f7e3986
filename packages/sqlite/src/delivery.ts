import { type DeadLetterInfo, type DeliveryHost, DeliveryLostError, LeasedDelivery } from '@errand/core'
import { ADAPTER } from './options.js'

/** A change to one delivered row, applied by the broker's next cycle. */
export type SettleOp =
  | { readonly kind: 'ack' }
  | { readonly kind: 'nack'; readonly delayMs: number }
  | { readonly kind: 'dead'; readonly info: DeadLetterInfo }
  | { readonly kind: 'extend'; readonly ms: number }
  | { readonly kind: 'release' }

/** What a {@link SqliteDelivery} needs from the consumer that handed it out. */
export interface SqliteDeliveryHost extends DeliveryHost {
  /**
   * Queues `op` for the next cycle; resolves once committed, with false when it matched no row
   * (the lease ran out and the row was leased again or removed).
   */
  apply(delivery: SqliteDelivery, op: SettleOp): Promise<boolean>
}

/** The row and consumer a delivery stands for. */
export interface SqliteDeliveryInit {
  readonly queue: string
  /** Row id (the message id as a number). */
  readonly id: number
  /** The row's `deliveries` counter after this lease: attempt and fencing token. */
  readonly deliveries: number
  readonly body: Uint8Array
}

/**
 * One leased row. Settle-once rules and the failure policy are core's ({@link LeasedDelivery});
 * this class only says how each settle reaches the file. The lease token is the row's
 * `deliveries` counter (= `attempt`): a settle after the lease ran out and the row went to
 * someone else matches nothing and changes nothing. An extend that matches no row means the
 * lease is gone: `lost` aborts with a `DeliveryLostError`.
 */
export class SqliteDelivery extends LeasedDelivery {
  readonly queue: string
  /** Row id (the message id as a number). */
  readonly id: number
  declare protected readonly host: SqliteDeliveryHost

  constructor(host: SqliteDeliveryHost, init: SqliteDeliveryInit) {
    super(host, { messageId: String(init.id), body: init.body, attempt: init.deliveries })
    this.queue = init.queue
    this.id = init.id
  }

  protected async storeAck(): Promise<void> {
    await this.host.apply(this, { kind: 'ack' })
  }

  protected async storeNack(delayMs: number): Promise<void> {
    await this.host.apply(this, { kind: 'nack', delayMs })
  }

  protected async storeDeadLetter(info: DeadLetterInfo): Promise<void> {
    await this.host.apply(this, { kind: 'dead', info })
  }

  protected storeExtend(ms: number): Promise<boolean> {
    return this.host.apply(this, { kind: 'extend', ms })
  }

  protected lostReason(): DeliveryLostError {
    return new DeliveryLostError(
      `the lease of message ${this.messageId} in queue "${this.queue}" ran out and the message was reclaimed (it may run again elsewhere)`,
      { adapter: ADAPTER },
    )
  }
}
