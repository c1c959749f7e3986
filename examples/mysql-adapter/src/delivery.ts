import { type DeadLetterInfo, type DeliveryHost, DeliveryLostError, LeasedDelivery } from '@errand/core'
import { ADAPTER } from './options.js'
import type { HeldRow, MySqlStore } from './store.js'

/** What a {@link MySqlDelivery} needs from the consumer that took it. */
export interface MySqlDeliveryHost extends DeliveryHost {
  /** The statements a delivery runs on its row. */
  readonly store: MySqlStore
}

/**
 * One taken row. The settle-once rules and the failure policy are core's ({@link LeasedDelivery});
 * this class only says which statement each settle runs. `attempt` is the row's `deliveries`
 * after this take, and every statement is fenced on it (see `store.ts`).
 */
export class MySqlDelivery extends LeasedDelivery {
  readonly queue: string
  declare protected readonly host: MySqlDeliveryHost

  constructor(host: MySqlDeliveryHost, row: HeldRow) {
    super(host, row)
    this.queue = row.queue
  }

  protected storeAck(): Promise<void> {
    return this.host.store.ack(this)
  }

  protected storeNack(delayMs: number): Promise<void> {
    return this.host.store.giveBack([this], delayMs)
  }

  protected storeDeadLetter(info: DeadLetterInfo): Promise<void> {
    return this.host.store.deadLetter(this, info)
  }

  /** False (the delivery is then lost) when the fenced UPDATE matched no row. */
  protected storeExtend(ms: number): Promise<boolean> {
    return this.host.store.extend(this, ms)
  }

  protected lostReason(): DeliveryLostError {
    return new DeliveryLostError(
      `the lease of message ${this.messageId} in queue "${this.queue}" ran out and the row was taken again (it may run again elsewhere)`,
      { adapter: ADAPTER },
    )
  }
}
