import { type DeadLetterInfo, type Delivery, NotSupportedError } from '@errand/core'
import type { Channel, ConsumeMessage } from 'amqplib'
import { attemptOf, messageIdOf } from './headers.js'

/** One consumer channel. Deliveries settle on the channel they came from, or not at all. */
export interface Lane {
  readonly ch: Channel
  /** False once the channel closed: the server has put its unsettled messages back. */
  alive: boolean
  /** False once the consumer was cancelled (by us or by the server). */
  consuming: boolean
  /** Deliveries handed out on this channel and not settled yet. */
  outstanding: number
  /** The consumer tag, once subscribed. */
  tag: string | undefined
}

/** What a delivery needs from its consumer and broker. */
export interface DeliveryHost {
  readonly queue: string
  readonly maxDelayMs: number
  /** Throws `ERR_CLOSED` once the broker is closed. */
  assertOpen(): void
  /** Publish a copy of `message` (confirmed) with `deliveries` counted so far, after `delayMs`. */
  republish(queue: string, message: ConsumeMessage, deliveries: number, delayMs: number): Promise<void>
  /** Publish `message` to the queue's dead letters (confirmed). */
  deadLetter(queue: string, message: ConsumeMessage, info: DeadLetterInfo, attempt: number): Promise<void>
  /** Have the broker's `close()` wait for `settle` (bounded) before it closes channels. */
  track(settle: Promise<void>): Promise<void>
  /** Ack `message` on `lane` and free its prefetch slot. */
  release(lane: Lane, message: ConsumeMessage): void
}

/**
 * A message delivered by RabbitMQ. Settles once: later calls resolve without effect. `nack` and
 * `deadLetter` publish a copy (to the queue, a delay level or `<q>.dead`) on the confirm channel
 * and ack the original once RabbitMQ confirmed the copy; a crash in between leaves both, so the
 * message may run twice, never zero times. If the channel it came on has closed (connection
 * lost, consumer timeout), RabbitMQ has already put the message back: settling does nothing.
 * After the broker closed, settling an unsettled delivery rejects with `ERR_CLOSED`.
 */
export class AmqpDelivery implements Delivery {
  readonly messageId: string
  readonly body: Uint8Array
  readonly attempt: number
  readonly #host: DeliveryHost
  readonly #lane: Lane
  readonly #message: ConsumeMessage
  #settled = false

  constructor(host: DeliveryHost, lane: Lane, message: ConsumeMessage) {
    this.#host = host
    this.#lane = lane
    this.#message = message
    this.messageId = messageIdOf(message)
    this.body = message.content
    this.attempt = attemptOf(message)
  }

  /** Remove the message for good. */
  async ack(): Promise<void> {
    if (this.#settled) return
    this.#host.assertOpen()
    this.#settled = true
    this.#host.release(this.#lane, this.#message)
  }

  /** Deliver the message again (after `delayMs`), with `attempt + 1`. */
  async nack(options: { delayMs?: number } = {}): Promise<void> {
    const delayMs = options.delayMs ?? 0
    if (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0) {
      throw new TypeError(`nack: delayMs must be a finite number >= 0, got ${String(delayMs)}`)
    }
    if (this.#settled) return
    if (delayMs > this.#host.maxDelayMs) {
      throw new NotSupportedError(`nack delay of ${delayMs} ms is over maxDelayMs ${this.#host.maxDelayMs}`, {
        adapter: 'amqp',
      })
    }
    await this.#settleWithCopy(() =>
      this.#host.republish(this.#host.queue, this.#message, this.attempt, delayMs),
    )
  }

  /** Move the message to `<queue>.dead` with the reason and error. */
  async deadLetter(info: DeadLetterInfo): Promise<void> {
    if (typeof info !== 'object' || info === null || typeof info.reason !== 'string') {
      throw new TypeError('deadLetter: info must be an object with a reason')
    }
    if (this.#settled) return
    await this.#settleWithCopy(() =>
      this.#host.deadLetter(this.#host.queue, this.#message, info, this.attempt),
    )
  }

  async #settleWithCopy(copy: () => Promise<void>): Promise<void> {
    this.#host.assertOpen()
    this.#settled = true
    if (!this.#lane.alive) return
    await this.#host.track(this.#copyThenAck(copy))
  }

  async #copyThenAck(copy: () => Promise<void>): Promise<void> {
    try {
      await copy()
    } catch (err) {
      this.#settled = false
      throw err
    }
    this.#host.release(this.#lane, this.#message)
  }
}
