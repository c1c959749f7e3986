import type { Message } from '@aws-sdk/client-sqs'
import { type DeadLetterInfo, type DeliveryHost, DeliveryLostError, LeasedDelivery } from '@errand/core'
import { isStaleReceipt } from './errors.js'
import type { Store } from './store.js'

/** Visibility SQS allows at most, counted from the receive: 12 hours. */
export const MAX_VISIBILITY_SECONDS = 43_200
/** Probe the lease before settling when less than this is left of it (clocks, latency). */
const LEASE_MARGIN_MS = 1_000

/** What a delivery needs from its consumer, besides what every adapter's delivery needs. */
export interface SqsDeliveryHost extends DeliveryHost {
  readonly store: Store
  /** True when every unsettled delivery of the consumer is being settled: no batch company is coming. */
  allSettling(): boolean
  /** Re-send the message with a delay too long for its visibility, as a new message. */
  resend(delivery: SqsDelivery, delayMs: number): Promise<void>
  /** Send the message to the dead-letter queue with the reason attributes. */
  sendDeadLetter(delivery: SqsDelivery, info: DeadLetterInfo): Promise<void>
  /** Return the message without counting this receive (standard queues; FIFO: visibility 0). */
  giveBack(delivery: SqsDelivery): Promise<void>
}

/**
 * One received SQS message, under core's settle-once rules (`LeasedDelivery`). Its lease is the
 * visibility timeout; settling after the lease ran out first checks (ChangeMessageVisibility)
 * that the receipt handle still holds the message, so a late ack never deletes a copy that
 * another consumer has received meanwhile.
 *
 * When SQS refuses the receipt handle (ChangeMessageVisibility on extend, or that check before a
 * late settle), the message is no longer ours: `lost` aborts with a `DeliveryLostError`.
 */
export class SqsDelivery extends LeasedDelivery {
  readonly url: string
  readonly handle: string
  readonly message: Message
  readonly level: number
  /** When the receive was sent (the 12-hour visibility limit counts from about then). */
  readonly receivedAt: number
  /** Local estimate of the lease end (conservative: counted from before the receive). */
  leaseEnd: number
  readonly #host: SqsDeliveryHost
  readonly #leaseSeconds: number
  /** Why SQS refused the handle the last time (the cause of the `DeliveryLostError`). */
  #refused: unknown

  constructor(init: {
    host: SqsDeliveryHost
    message: Message & { ReceiptHandle: string }
    body: Uint8Array
    attempt: number
    url: string
    level: number
    receivedAt: number
    leaseSeconds: number
  }) {
    super(init.host, {
      messageId: init.message.MessageId ?? init.message.ReceiptHandle,
      body: init.body,
      attempt: init.attempt,
    })
    this.#host = init.host
    this.message = init.message
    this.handle = init.message.ReceiptHandle
    this.url = init.url
    this.level = init.level
    this.receivedAt = init.receivedAt
    this.#leaseSeconds = init.leaseSeconds
    this.leaseEnd = init.receivedAt + init.leaseSeconds * 1000
  }

  protected async storeAck(): Promise<void> {
    if (await this.#lost()) return
    await this.#host.store
      .delete(this.url, this.handle, this.leaseEnd, this.#host.allSettling())
      .catch((err: unknown) => {
        // The handle no longer holds the message (deleted, or received elsewhere): nothing to do.
        if (!isStaleReceipt(err)) throw err
      })
  }

  protected async storeNack(delayMs: number): Promise<void> {
    const seconds = Math.ceil(delayMs / 1000)
    if (seconds <= this.#visibilityLeft()) {
      await this.#changeVisibility(seconds).catch((err: unknown) => {
        if (!isStaleReceipt(err)) throw err
      })
      return
    }
    if (await this.#lost()) return
    await this.#host.resend(this, delayMs)
    await this.#host.store.delete(this.url, this.handle, Math.max(this.leaseEnd, Date.now() + 1000))
  }

  protected async storeDeadLetter(info: DeadLetterInfo): Promise<void> {
    if (await this.#lost()) return
    await this.#host.sendDeadLetter(this, info)
    // At-least-once into the dead letters: a crash here leaves the message in both queues.
    await this.#host.store.delete(this.url, this.handle, Math.max(this.leaseEnd, Date.now() + 1000))
  }

  protected async storeExtend(ms: number): Promise<boolean> {
    const seconds = Math.max(1, Math.min(Math.ceil(ms / 1000), this.#visibilityLeft()))
    try {
      await this.#changeVisibility(seconds)
      return true
    } catch (err) {
      if (!isStaleReceipt(err)) throw err
      // The lease ran out and the message was received elsewhere (or deleted).
      this.#refused = err
      return false
    }
  }

  protected lostReason(): DeliveryLostError {
    return new DeliveryLostError(
      `the receipt handle of message ${this.messageId} is no longer valid: its visibility timeout ran out and the message was received again or deleted (it may run again elsewhere)`,
      { adapter: 'sqs', cause: this.#refused },
    )
  }

  /**
   * Return a delivery whose handler never started, without counting it as an attempt where SQS
   * allows it. SQS has no way to undo a receive: ChangeMessageVisibility 0 makes the message
   * visible again, but its ApproximateReceiveCount keeps the receive. So on a standard queue the
   * message is re-sent carrying its delivery count (`errand.base` = attempt − 1) and the received
   * copy deleted (2 batched calls; a crash between them leaves a duplicate, never a loss); on a
   * FIFO queue, where a re-send would lose its place in the group, it is made visible again, which
   * counts one receive. Settles the delivery. Not in core's `Delivery` interface yet (see the
   * README, *Attempts and crashes*); `nack()` counts the receive.
   */
  giveBack(): Promise<void> {
    return this.settle('giveBack', async () => {
      if (await this.#lost()) return
      await this.#host.giveBack(this)
    })
  }

  /** Seconds of visibility SQS still allows for this receive. */
  #visibilityLeft(): number {
    return MAX_VISIBILITY_SECONDS - Math.ceil((Date.now() - this.receivedAt) / 1000) - 1
  }

  async #changeVisibility(seconds: number): Promise<void> {
    const before = Date.now()
    await this.#host.store.changeVisibility(
      this.url,
      this.handle,
      seconds,
      Math.max(this.leaseEnd, before + 1000),
    )
    this.leaseEnd = before + seconds * 1000
  }

  /**
   * Inside a settle: true when the lease ran out and the handle no longer holds the message
   * (then `lost` is aborted and the settle ends without effect). A lease that ran out is renewed
   * first, which fails once the message was received elsewhere or deleted.
   */
  async #lost(): Promise<boolean> {
    if (Date.now() < this.leaseEnd - LEASE_MARGIN_MS) return false
    if (await this.storeExtend(Math.max(1, Math.min(this.#leaseSeconds, this.#visibilityLeft())) * 1000)) {
      return false
    }
    this.lostDuringSettle(this.lostReason())
    return true
  }
}
