import { type DeadLetterInfo, type DeliveryHost, SettleOnceDelivery } from '@errand/core'
import type { Channel, ConsumeMessage } from 'amqplib'
import { attemptOf, messageIdOf } from './headers.js'

/** One consumer channel. Deliveries settle on the channel they came from, or not at all. */
export interface Lane {
  readonly ch: Channel
  /** False once the channel closed: the server has put its unsettled messages back. */
  alive: boolean
  /** False once the consumer was cancelled (by us or by the server). */
  consuming: boolean
  /** Messages taken on this channel and not settled yet (deliveries and re-counts). */
  outstanding: number
  /** Deliveries handed out on this channel that may still need giving back when it closes. */
  readonly held: Set<AmqpDelivery>
  /** The consumer tag, once subscribed. */
  tag: string | undefined
}

/** What a delivery needs from its consumer (one host per channel) and broker. */
export interface AmqpDeliveryHost extends DeliveryHost {
  readonly queue: string
  /** False once the delivery's channel closed: RabbitMQ has put the message back. */
  readonly alive: boolean
  /** Ack `message` on the delivery's channel. */
  ack(message: ConsumeMessage): void
  /** Publish a copy of `message` (confirmed) with `deliveries` counted so far, after `delayMs`. */
  republish(queue: string, message: ConsumeMessage, deliveries: number, delayMs: number): Promise<void>
  /** Publish `message` to the queue's dead letters (confirmed). */
  deadLetter(queue: string, message: ConsumeMessage, info: DeadLetterInfo, attempt: number): Promise<void>
  /** Have the broker's `close()` wait for `settle` (bounded) before it closes channels. */
  track(settle: Promise<void>): Promise<void>
}

/**
 * A message delivered by RabbitMQ, settled once under core's rules ({@link SettleOnceDelivery}).
 * `nack` and `deadLetter` publish a copy (to the queue, a delay level or `<q>.dead`) on the
 * confirm channel and ack the original once RabbitMQ confirmed the copy; a crash in between
 * leaves both, so the message may run twice, never zero times. If the channel it came on has
 * closed (connection lost, consumer timeout), RabbitMQ has already put the message back: the
 * consumer released the delivery, and settling it does nothing.
 */
export class AmqpDelivery extends SettleOnceDelivery {
  declare protected readonly host: AmqpDeliveryHost
  readonly #message: ConsumeMessage

  constructor(host: AmqpDeliveryHost, message: ConsumeMessage) {
    super(host, { messageId: messageIdOf(message), body: message.content, attempt: attemptOf(message) })
    this.#message = message
  }

  protected async storeAck(): Promise<void> {
    this.host.ack(this.#message)
  }

  protected storeNack(delayMs: number): Promise<void> {
    return this.#copyThenAck(() => this.host.republish(this.host.queue, this.#message, this.attempt, delayMs))
  }

  protected storeDeadLetter(info: DeadLetterInfo): Promise<void> {
    return this.#copyThenAck(() => this.host.deadLetter(this.host.queue, this.#message, info, this.attempt))
  }

  /** The copy first, the ack after it is confirmed; nothing when RabbitMQ has the message back. */
  async #copyThenAck(copy: () => Promise<void>): Promise<void> {
    if (!this.host.alive) return
    // Tracked with the ack: the broker's close waits for both before it closes the channel.
    await this.host.track(
      copy().then(() => {
        this.host.ack(this.#message)
      }),
    )
  }
}
