import { type DeadLetterInfo, type DeliveryHost, DeliveryLostError, LeasedDelivery } from '@errand/core'
import type { RetryLimit } from './connection.js'
import { ADAPTER } from './options.js'
import type { JobStore } from './store.js'

/** What a delivery needs from the consumer that fetched it: core's host plus the store calls. */
export interface PgDeliveryHost extends DeliveryHost {
  /** The queue the delivery came from. */
  readonly queue: string
  /**
   * How long (ms) one settle of our deliveries may keep retrying through an outage: no bound of
   * ours while consuming (the broker's `reconnectTimeoutMs` applies); the shutdown grace once
   * the consumer was canceled (the lease brings back what could not be settled, so a stopping
   * worker need not wait out a long outage).
   */
  settleBudget(): number
  /** The statements (nack, dead-letter, extend) a delivery runs. */
  readonly store: JobStore
  /** Delete the row, in the next ack batch of the consumer. */
  ack(delivery: PgDelivery): Promise<void>
  /** A settle succeeded: the broker no longer has to give this delivery back at close. */
  forget(delivery: PgDelivery): void
}

/**
 * One leased row. Its lease token is the row's `deliveries` counter at fetch time: every new
 * delivery increments it, so settling a delivery whose lease ran out and was handed to another
 * consumer matches no row and leaves the new holder's copy alone. The settle-once rules are
 * core's ({@link LeasedDelivery}); this class only runs the statements.
 */
export class PgDelivery extends LeasedDelivery {
  declare protected readonly host: PgDeliveryHost
  private readonly limit: RetryLimit = () => this.host.settleBudget()

  constructor(host: PgDeliveryHost, id: string, deliveries: number, body: Uint8Array) {
    super(host, { messageId: id, body, attempt: deliveries })
  }

  protected async storeAck(): Promise<void> {
    await this.host.ack(this)
    this.host.forget(this)
  }

  protected async storeNack(delayMs: number): Promise<void> {
    await this.host.store.nack(this.host.queue, this.messageId, this.attempt, delayMs, this.limit)
    this.host.forget(this)
  }

  protected async storeDeadLetter(info: DeadLetterInfo): Promise<void> {
    await this.host.store.deadLetter(this.messageId, this.attempt, info, this.limit)
    this.host.forget(this)
  }

  /** False when no row matched `(id, deliveries)` with a lease: the lease was lost. */
  protected storeExtend(ms: number): Promise<boolean> {
    return this.host.store.extend(this.messageId, this.attempt, ms, this.limit)
  }

  protected lostReason(): DeliveryLostError {
    return new DeliveryLostError(
      `the lease of message ${this.messageId} in queue "${this.host.queue}" ran out and the message was reclaimed (it may run again elsewhere)`,
      { adapter: ADAPTER },
    )
  }
}
