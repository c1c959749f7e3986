import type { Message } from '@aws-sdk/client-sqs'
import { ClosedError, type DeadLetterInfo, type Delivery, DeliveryLostError } from '@errand/core'
import { isStaleReceipt } from './client.js'
import type { Transport } from './transport.js'

/** Visibility SQS allows at most, counted from the receive: 12 hours. */
export const MAX_VISIBILITY_SECONDS = 43_200
/** Probe the lease before settling when less than this is left of it (clocks, latency). */
const LEASE_MARGIN_MS = 1_000

/** What a delivery needs from its consumer and broker. */
export interface DeliveryHost {
  readonly transport: Transport
  isClosed(): boolean
  /** The delivery is settled (or abandoned): free its prefetch slot. */
  settled(delivery: SqsDelivery): void
  /** True when every unsettled delivery of the consumer is being settled: no batch company is coming. */
  allSettling(): boolean
  /** Re-send the message with a delay too long for its visibility, as a new message. */
  resend(delivery: SqsDelivery, delayMs: number): Promise<void>
  /** Send the message to the dead-letter queue with the reason attributes. */
  sendDeadLetter(delivery: SqsDelivery, info: DeadLetterInfo): Promise<void>
  /** Return the message without counting this receive (standard queues; FIFO: visibility 0). */
  giveBack(delivery: SqsDelivery): Promise<void>
}

type State = 'open' | 'settling' | 'settled'

/**
 * One received SQS message. Its lease is the visibility timeout; settling after the lease ran out
 * first checks (ChangeMessageVisibility) that the receipt handle still holds the message, so a
 * late ack never deletes a copy that another consumer has received meanwhile.
 *
 * When SQS refuses the receipt handle (ChangeMessageVisibility on extend, or that check before a
 * late settle), the message is no longer ours: `lost` aborts with a `DeliveryLostError`, the
 * delivery stops counting against the prefetch, and settling it resolves without effect (after
 * `close()` it rejects with `ERR_CLOSED`, like any settle).
 */
export class SqsDelivery implements Delivery {
  readonly messageId: string
  readonly body: Uint8Array
  readonly attempt: number
  readonly url: string
  readonly handle: string
  readonly message: Message
  readonly level: number
  /** When the receive was sent (the 12-hour visibility limit counts from about then). */
  readonly receivedAt: number
  /** Local estimate of the lease end (conservative: counted from before the receive). */
  leaseEnd: number
  /** Aborted with a `DeliveryLostError` (`ERR_LOST`) once SQS refused the receipt handle. */
  readonly lost: AbortSignal
  readonly #lostController = new AbortController()
  readonly #host: DeliveryHost
  readonly #leaseSeconds: number
  #state: State = 'open'
  #settling: Promise<void> | undefined
  #abandonTimer: NodeJS.Timeout | undefined

  constructor(init: {
    host: DeliveryHost
    message: Message & { ReceiptHandle: string }
    body: Uint8Array
    attempt: number
    url: string
    level: number
    receivedAt: number
    leaseSeconds: number
  }) {
    this.#host = init.host
    this.message = init.message
    this.messageId = init.message.MessageId ?? init.message.ReceiptHandle
    this.handle = init.message.ReceiptHandle
    this.body = init.body
    this.attempt = init.attempt
    this.url = init.url
    this.level = init.level
    this.receivedAt = init.receivedAt
    this.#leaseSeconds = init.leaseSeconds
    this.leaseEnd = init.receivedAt + init.leaseSeconds * 1000
    this.lost = this.#lostController.signal
  }

  /** Still unsettled (handed back on close). */
  get open(): boolean {
    return this.#state !== 'settled'
  }

  /** A settle call is under way. */
  get settling(): boolean {
    return this.#state === 'settling'
  }

  ack(): Promise<void> {
    return this.#settle('ack', async () => {
      if (await this.#lost()) return
      await this.#host.transport
        .delete(this.url, this.handle, this.leaseEnd, this.#host.allSettling())
        .catch((err: unknown) => {
          // The handle no longer holds the message (deleted, or received elsewhere): nothing to do.
          if (!isStaleReceipt(err)) throw err
        })
    })
  }

  nack(options: { delayMs?: number } = {}): Promise<void> {
    const delayMs = Math.max(0, options.delayMs ?? 0)
    return this.#settle('nack', async () => {
      const seconds = Math.ceil(delayMs / 1000)
      if (seconds <= this.#visibilityLeft()) {
        await this.#changeVisibility(seconds).catch((err: unknown) => {
          if (!isStaleReceipt(err)) throw err
        })
        return
      }
      if (await this.#lost()) return
      await this.#host.resend(this, delayMs)
      await this.#host.transport.delete(this.url, this.handle, Math.max(this.leaseEnd, Date.now() + 1000))
    })
  }

  deadLetter(info: DeadLetterInfo): Promise<void> {
    return this.#settle('deadLetter', async () => {
      if (await this.#lost()) return
      await this.#host.sendDeadLetter(this, info)
      // At-least-once into the dead letters: a crash here leaves the message in both queues.
      await this.#host.transport.delete(this.url, this.handle, Math.max(this.leaseEnd, Date.now() + 1000))
    })
  }

  async extend(ms: number): Promise<void> {
    if (this.#host.isClosed()) throw new ClosedError('broker is closed', { adapter: 'sqs' })
    // A late extend (a lease timer firing as the task finished) is harmless on every store.
    if (this.#state !== 'open') return
    const seconds = Math.max(1, Math.min(Math.ceil(ms / 1000), this.#visibilityLeft()))
    try {
      await this.#changeVisibility(seconds)
    } catch (err) {
      if (!isStaleReceipt(err)) throw err
      // The lease ran out and the message was received elsewhere (or deleted): nothing to extend.
      this.#markLost(err)
    }
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
    return this.#settle('giveBack', async () => {
      if (await this.#lost()) return
      await this.#host.giveBack(this)
    })
  }

  /** Give the message back at once (close); the delivery becomes settled. */
  async release(): Promise<void> {
    if (this.#state === 'settled') return
    this.#finish()
    await this.#changeVisibility(0).catch(() => undefined)
  }

  /** Seconds of visibility SQS still allows for this receive. */
  #visibilityLeft(): number {
    return MAX_VISIBILITY_SECONDS - Math.ceil((Date.now() - this.receivedAt) / 1000) - 1
  }

  async #changeVisibility(seconds: number): Promise<void> {
    const before = Date.now()
    await this.#host.transport.changeVisibility(
      this.url,
      this.handle,
      seconds,
      Math.max(this.leaseEnd, before + 1000),
    )
    this.leaseEnd = before + seconds * 1000
  }

  /**
   * True when the lease ran out and the handle no longer holds the message. A lease that ran
   * out is renewed first (which fails once the message was received elsewhere or deleted).
   */
  async #lost(): Promise<boolean> {
    if (Date.now() < this.leaseEnd - LEASE_MARGIN_MS) return false
    try {
      await this.#changeVisibility(Math.max(1, Math.min(this.#leaseSeconds, this.#visibilityLeft())))
      return false
    } catch (err) {
      if (!isStaleReceipt(err)) throw err
      this.#markLost(err)
      return true
    }
  }

  /** SQS refused the receipt handle: abort `lost`; an open delivery stops counting at once. */
  #markLost(cause: unknown): void {
    if (!this.#lostController.signal.aborted) {
      this.#lostController.abort(
        new DeliveryLostError(
          `the receipt handle of message ${this.messageId} is no longer valid: its visibility timeout ran out and the message was received again or deleted (it may run again elsewhere)`,
          { adapter: 'sqs', cause },
        ),
      )
    }
    if (this.#state === 'open') this.#finish()
  }

  /** Settle once: later calls (or calls while one runs) share the first one's outcome. */
  #settle(kind: string, run: () => Promise<void>): Promise<void> {
    if (this.#host.isClosed()) {
      return Promise.reject(new ClosedError(`cannot ${kind}: broker is closed`, { adapter: 'sqs' }))
    }
    if (this.#state === 'settled') return Promise.resolve()
    if (this.#settling !== undefined) return this.#settling
    this.#state = 'settling'
    this.#settling = run().then(
      () => this.#finish(),
      (err: unknown) => {
        // Left unsettled: the caller may settle again; the slot frees when the lease runs out.
        this.#state = 'open'
        this.#settling = undefined
        this.#abandonAtLeaseEnd()
        throw err
      },
    )
    return this.#settling
  }

  #abandonAtLeaseEnd(): void {
    if (this.#abandonTimer !== undefined) return
    this.#abandonTimer = setTimeout(() => this.#finish(), Math.max(0, this.leaseEnd - Date.now()))
    this.#abandonTimer.unref()
  }

  #finish(): void {
    if (this.#state === 'settled') return
    this.#state = 'settled'
    if (this.#abandonTimer !== undefined) clearTimeout(this.#abandonTimer)
    this.#host.settled(this)
  }
}
