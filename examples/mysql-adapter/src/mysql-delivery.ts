import type { DeadLetterInfo, Delivery } from '@errand/core'

/** What a delivery needs from the consumer that took it. */
export interface DeliveryOwner {
  /** Delete the row if this take still holds it. */
  ack(id: string, take: number): Promise<void>
  /** Make the row visible again after `delayMs`, if this take still holds it. */
  nack(id: string, take: number, delayMs: number): Promise<void>
  /** Move the row to the dead letters, if this take still holds it (one transaction). */
  deadLetter(id: string, take: number, info: DeadLetterInfo): Promise<void>
  /** Push the lease to `ms` from now, if this take still holds it. */
  extend(id: string, take: number, ms: number): Promise<void>
  /** Called once when the delivery is settled (frees its prefetch slot). */
  settled(delivery: MySqlDelivery): void
}

/**
 * One taken row. `attempt` is the row's `deliveries` after this take; every statement it sends
 * is fenced on that number, so a holder whose lease ran out (and whose row was taken again)
 * changes nothing. Settles once; a settle that failed can be tried again.
 */
export class MySqlDelivery implements Delivery {
  readonly messageId: string
  readonly body: Uint8Array
  readonly attempt: number
  readonly #owner: DeliveryOwner
  #state: 'open' | 'settling' | 'settled' = 'open'

  constructor(owner: DeliveryOwner, id: string, take: number, body: Uint8Array) {
    this.#owner = owner
    this.messageId = id
    this.attempt = take
    this.body = body
  }

  /** True while nothing has settled it. */
  get open(): boolean {
    return this.#state === 'open'
  }

  ack(): Promise<void> {
    return this.#settle(() => this.#owner.ack(this.messageId, this.attempt))
  }

  nack(options: { delayMs?: number } = {}): Promise<void> {
    const delayMs = options.delayMs ?? 0
    if (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0) {
      return Promise.reject(
        new TypeError(`nack: delayMs must be a finite number >= 0, got ${String(delayMs)}`),
      )
    }
    return this.#settle(() => this.#owner.nack(this.messageId, this.attempt, delayMs))
  }

  deadLetter(info: DeadLetterInfo): Promise<void> {
    return this.#settle(() => this.#owner.deadLetter(this.messageId, this.attempt, info))
  }

  async extend(ms: number): Promise<void> {
    if (this.#state !== 'open') return
    await this.#owner.extend(this.messageId, this.attempt, ms)
  }

  async #settle(run: () => Promise<void>): Promise<void> {
    if (this.#state !== 'open') return
    this.#state = 'settling'
    try {
      await run()
    } catch (err) {
      this.#state = 'open'
      throw err
    }
    this.#state = 'settled'
    this.#owner.settled(this)
  }
}
