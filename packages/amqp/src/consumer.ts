import {
  type Consumer,
  type DeadLetterInfo,
  type DeliveryHandler,
  isErrandError,
  type Logger,
  type ReconnectBackoff,
  reconnectDelay,
} from '@errand/core'
import type { ConsumeMessage } from 'amqplib'
import { type ConnectionManager, closeQuietly, serverCode, wrap } from './connection.js'
import { AmqpDelivery, type AmqpDeliveryHost, type Lane } from './delivery.js'
import { attemptOf, needsRecount } from './headers.js'
import type { Topology } from './topology.js'

/** What a consumer needs from its broker. */
export interface ConsumerHost {
  readonly adapter: string
  readonly conn: ConnectionManager
  readonly topology: Topology
  readonly logger: Logger
  /** Longest `nack` delay (the broker's `capabilities.maxDelayMs`). */
  readonly maxDelayMs: number
  /** Waits between attempts to subscribe again. */
  readonly reconnect: ReconnectBackoff
  /** Throws `ERR_CLOSED` once the broker is closed. */
  assertOpen(what: string): void
  /** Publish a copy of `message` (confirmed) with `deliveries` counted so far, after `delayMs`. */
  republish(queue: string, message: ConsumeMessage, deliveries: number, delayMs: number): Promise<void>
  /** Publish `message` to the queue's dead letters (confirmed). */
  deadLetter(queue: string, message: ConsumeMessage, info: DeadLetterInfo, attempt: number): Promise<void>
  /** Have the broker's `close()` wait for `settle` (bounded) before it closes channels. */
  track(settle: Promise<void>): Promise<void>
}

const CONSUMER_TIMEOUT = /acknowledgement .*timed out/i
/** Largest `basic.qos` prefetch count (a short). */
const MAX_QOS = 65_535

/**
 * One `basic.consume` on a channel of its own, with `basic.qos(prefetch)`. When the channel
 * closes under it — connection lost, RabbitMQ restarted, or the server's `consumer_timeout`
 * fired — RabbitMQ puts the unsettled messages back, the deliveries handed out from that channel
 * are released (settling them does nothing), and the consumer re-subscribes on a new channel (waiting for the reconnect
 * if needed), with backoff, until cancelled.
 */
export class AmqpConsumer implements Consumer {
  readonly #host: ConsumerHost
  readonly #queue: string
  readonly #onDelivery: DeliveryHandler
  readonly #prefetch: number
  #lane: Lane | undefined
  /** Every channel of this consumer not closed yet (a cancelled one stays open for settling). */
  readonly #lanes = new Set<Lane>()
  #cancelled = false
  #recovering = false
  #retryTimer: NodeJS.Timeout | undefined

  constructor(host: ConsumerHost, queue: string, onDelivery: DeliveryHandler, prefetch: number) {
    this.#host = host
    this.#queue = queue
    this.#onDelivery = onDelivery
    // basic.qos counts in 16 bits: a larger prefetch is held to RabbitMQ's most, which still
    // keeps at most `prefetch` deliveries unsettled.
    this.#prefetch = Math.min(prefetch, MAX_QOS)
  }

  /** True once cancelled and every channel is closed: the broker can forget this consumer. */
  get finished(): boolean {
    return this.#cancelled && this.#lanes.size === 0
  }

  /** Subscribe. Rejects when the first subscription fails (nothing is retried then). */
  start(): Promise<void> {
    return this.#open()
  }

  /**
   * Stop receiving. Deliveries already handed out stay valid: the channel stays open until the
   * last of them is settled, then closes.
   */
  async cancel(): Promise<void> {
    if (this.#cancelled) return
    this.#cancelled = true
    clearTimeout(this.#retryTimer)
    const lane = this.#lane
    if (lane === undefined || !lane.alive) return
    await this.#unsubscribe(lane)
    if (lane.outstanding === 0) await closeQuietly(lane.ch)
  }

  /**
   * The broker is closing: stop now and give every unsettled delivery back to the queue. The
   * channel is closed with a handshake, so acks sent before are applied first (closing the
   * connection alone may overtake them).
   */
  async shutdown(): Promise<void> {
    this.#cancelled = true
    clearTimeout(this.#retryTimer)
    const lanes = [...this.#lanes]
    this.#lane = undefined
    await Promise.all(
      lanes.map(async (lane) => {
        giveBack(lane)
        await closeQuietly(lane.ch)
      }),
    )
  }

  /** A message of `lane` is done with; close a cancelled lane once its last one is. */
  #done(lane: Lane): void {
    if (!lane.alive) return
    lane.outstanding--
    if (!lane.consuming && lane.outstanding === 0) void closeQuietly(lane.ch)
  }

  /** What the deliveries of `lane` settle through. */
  #deliveryHost(lane: Lane): AmqpDeliveryHost {
    const host = this.#host
    return {
      adapter: host.adapter,
      maxDelayMs: host.maxDelayMs,
      queue: this.#queue,
      get alive() {
        return lane.alive
      },
      assertOpen: (what) => host.assertOpen(what),
      released: (delivery) => {
        // One whose settle failed stays held: open again, it is given back if the channel closes.
        if (!delivery.open) lane.held.delete(delivery as AmqpDelivery)
        this.#done(lane)
      },
      ack: (message) => ackOn(lane, message),
      republish: (q, m, n, d) => host.republish(q, m, n, d),
      deadLetter: (q, m, i, a) => host.deadLetter(q, m, i, a),
      track: (settle) => host.track(settle),
    }
  }

  /**
   * Subscribe on a new channel. Every failure is an `ErrandError` (a lost connection mid-way is
   * `ERR_CONNECTION`), never amqplib's own error ("Channel ended, no reply will be forthcoming",
   * "Connection closed"): `consume()` rejects with it at start, the recovery loop retries on it.
   */
  async #open(): Promise<void> {
    try {
      await this.#subscribe()
    } catch (err) {
      throw wrap(err, `cannot subscribe to "${this.#queue}"`)
    }
  }

  async #subscribe(): Promise<void> {
    const session = await this.#host.conn.session()
    await this.#host.topology.ensureQueue(this.#queue)
    const ch = await session.openChannel()
    const lane: Lane = {
      ch,
      alive: true,
      consuming: true,
      outstanding: 0,
      held: new Set(),
      tag: undefined,
    }
    const deliveryHost = this.#deliveryHost(lane)
    let closeError: Error | undefined
    ch.on('error', (err: Error) => {
      closeError = err
    })
    this.#lanes.add(lane)
    ch.on('close', () => this.#onClosed(lane, closeError))
    try {
      await ch.prefetch(this.#prefetch)
      if (this.#cancelled) throw new Error('cancelled')
      this.#lane = lane
      const { consumerTag } = await ch.consume(
        this.#queue,
        (message) => this.#onMessage(lane, deliveryHost, message),
        {
          noAck: false,
        },
      )
      lane.tag = consumerTag
      if (this.#cancelled) {
        await this.#unsubscribe(lane)
        if (lane.outstanding === 0) await closeQuietly(ch)
      }
    } catch (err) {
      lane.consuming = false
      await closeQuietly(ch)
      if (this.#cancelled) return
      throw err
    }
  }

  #onMessage(lane: Lane, host: AmqpDeliveryHost, message: ConsumeMessage | null): void {
    if (message === null) {
      // basic.cancel from the server: the queue was deleted (or, in a cluster, moved).
      this.#host.logger.warn(`[amqp] RabbitMQ cancelled the consumer of "${this.#queue}"; subscribing again`)
      lane.consuming = false
      this.#host.topology.forget(this.#queue)
      if (this.#lane === lane) this.#lane = undefined
      if (lane.outstanding === 0) void closeQuietly(lane.ch)
      this.#recover()
      return
    }
    // Arrived between our basic.cancel and its reply: not handed out, returned when the channel closes.
    if (!lane.consuming) return
    lane.outstanding++
    if (needsRecount(message)) {
      void this.#recount(lane, message)
      return
    }
    const delivery = new AmqpDelivery(host, message)
    lane.held.add(delivery)
    try {
      this.#onDelivery(delivery)
    } catch (err) {
      this.#host.logger.error(`[amqp] delivery handler of "${this.#queue}" threw: ${(err as Error)?.message}`)
    }
  }

  /**
   * A classic queue returned this message unsettled (a consumer died or closed) and says only
   * "redelivered", not how often. Publish a copy that carries the count (this return included) and
   * ack the original, instead of handing it out: the copy arrives with an exact `attempt`, so a
   * message that kills every worker reaches core's redelivery budget instead of looping at
   * attempt 2 forever. One extra confirmed publish per return, none on the normal path.
   */
  async #recount(lane: Lane, message: ConsumeMessage): Promise<void> {
    try {
      await this.#host.republish(this.#queue, message, attemptOf(message) - 1, 0)
    } catch (err) {
      // No copy: give the original back to be re-counted on its next delivery.
      this.#host.logger.warn(
        `[amqp] could not re-count a returned message of "${this.#queue}": ${String(err)}`,
      )
      if (lane.alive) {
        lane.outstanding--
        try {
          lane.ch.nack(message, false, true)
        } catch {
          // The channel closed: RabbitMQ has the message back anyway.
        }
      }
      return
    }
    ackOn(lane, message)
    this.#done(lane)
  }

  #onClosed(lane: Lane, err: Error | undefined): void {
    this.#lanes.delete(lane)
    const held = lane.outstanding
    const wasAlive = lane.alive
    giveBack(lane)
    if (err !== undefined && serverCode(err) === 406 && CONSUMER_TIMEOUT.test(err.message)) {
      this.#host.logger.warn(
        `[amqp] consumer_timeout: RabbitMQ closed the channel of a consumer of "${this.#queue}" because a ` +
          `delivery stayed unacknowledged longer than its consumer_timeout. ${held} unsettled deliveries go back ` +
          'to the queue and will be delivered again (attempt + 1); settling the old ones does nothing. Raise ' +
          'consumer_timeout (rabbitmq.conf) above your longest task.',
        { queue: this.#queue, unsettled: held, error: err.message },
      )
    } else if (err !== undefined && wasAlive) {
      this.#host.logger.warn(`[amqp] consumer channel of "${this.#queue}" closed: ${err.message}`)
    }
    if (this.#lane !== lane) return
    this.#lane = undefined
    if (!this.#cancelled && wasAlive) this.#recover()
  }

  /** Subscribe again on a new channel, with backoff, until it works or the consumer is cancelled. */
  #recover(attempt = 1): void {
    if (this.#cancelled || this.#host.conn.closed || (this.#recovering && attempt === 1)) return
    this.#recovering = true
    const delay = attempt === 1 ? 0 : reconnectDelay(attempt - 1, this.#host.reconnect)
    this.#retryTimer = setTimeout(() => {
      this.#open().then(
        () => {
          this.#recovering = false
        },
        (err: unknown) => {
          if (this.#cancelled || this.#host.conn.closed || isErrandError(err, 'ERR_CLOSED')) {
            this.#recovering = false
            return
          }
          if (attempt === 1 || attempt % 10 === 0) {
            this.#host.logger.warn(
              `[amqp] consumer of "${this.#queue}" could not resubscribe yet: ${(err as Error).message}`,
            )
          }
          this.#recover(attempt + 1)
        },
      )
    }, delay)
  }

  async #unsubscribe(lane: Lane): Promise<void> {
    if (!lane.consuming) return
    lane.consuming = false
    if (lane.tag === undefined) return
    try {
      await lane.ch.cancel(lane.tag)
    } catch {
      // The channel is closing anyway: the subscription ends with it.
    }
  }
}

/** Ack `message` on its channel; nothing once the channel closed (RabbitMQ has it back). */
function ackOn(lane: Lane, message: ConsumeMessage): void {
  if (!lane.alive) return
  try {
    lane.ch.ack(message)
  } catch {
    // The channel closed a moment ago: RabbitMQ has the message back; nothing to ack.
  }
}

/**
 * `lane`'s channel closed (or is closing with the broker): RabbitMQ puts its unsettled messages
 * back by itself, so its open deliveries are released without a call to RabbitMQ.
 */
function giveBack(lane: Lane): void {
  lane.alive = false
  lane.consuming = false
  for (const delivery of [...lane.held]) delivery.release()
}
