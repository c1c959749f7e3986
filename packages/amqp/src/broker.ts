import {
  BrokerBase,
  type BrokerCapabilities,
  brokerCapabilities,
  type CheckedConsumeOptions,
  type CheckedMessage,
  type Consumer,
  consoleLogger,
  type DeadLetter,
  type DeliveryHandler,
  type Logger,
  maskingLogger,
  type QueueStats,
} from '@errand/core'
import {
  deleteQueue,
  listDeadLetters,
  purgeDeadLetters,
  purgeQueue,
  queueStats,
  requeueDeadLetters,
} from './admin.js'
import { ConnectionManager } from './connection.js'
import { AmqpConsumer } from './consumer.js'
import { checkQueueName, maxDelayFor } from './names.js'
import { type AmqpBrokerOptions, type ParsedAmqpOptions, parseOptions } from './options.js'
import { Store } from './store.js'
import { Topology } from './topology.js'

/**
 * A `Broker` on RabbitMQ (AMQP 0-9-1) with amqplib, no plugins needed.
 *
 * - Publishing: persistent messages on durable queues over a confirm channel; `publish` resolves
 *   once RabbitMQ confirmed every message. Messages caught by a connection drop are re-sent after
 *   the reconnect (waiting up to `reconnectWaitMs`), so none vanishes.
 * - Consuming: a channel per consumer, `basic.qos(prefetch)`, manual acks. Unsettled deliveries
 *   return to the queue at once when their channel or connection closes (no leases:
 *   `capabilities.leases` is false), and `attempt` counts deliveries (see {@link attemptOf}).
 * - Delays: per-queue delay levels `<q>.delay.<n>` (TTL 2^n ms, dead-lettered down a chain of
 *   shared topic exchanges), exact to the millisecond, up to 2^delayLevels − 1 ms.
 * - Priorities (opt-in, `maxPriority`): `x-max-priority` on classic queues. Dead letters:
 *   `<q>.dead`, with reason headers.
 * - Reconnects with backoff; topology is declared again and consumers resume by themselves.
 *
 * @example
 * ```ts
 * const broker = new AmqpBroker({ url: 'amqp://guest:guest@127.0.0.1:5672' })
 * await broker.connect()
 * await broker.consume('emails', (d) => void d.ack(), { prefetch: 50 })
 * await broker.publish('emails', [{ body: new TextEncoder().encode('hi'), delayMs: 1000 }])
 * ```
 */
export class AmqpBroker extends BrokerBase {
  readonly name = 'amqp'
  readonly capabilities: BrokerCapabilities
  readonly #options: ParsedAmqpOptions
  readonly #logger: Logger
  readonly #conn: ConnectionManager
  readonly #topology: Topology
  readonly #store: Store
  readonly #consumers = new Set<AmqpConsumer>()
  readonly #inFlight = new Set<Promise<unknown>>()

  /** Validates `options` (throws `ERR_INVALID_OPTION` naming the field); does not connect. */
  constructor(options: AmqpBrokerOptions | string) {
    super()
    this.#options = parseOptions(options)
    const o = this.#options
    this.#logger = maskingLogger(o.logger ?? consoleLogger)
    this.capabilities = brokerCapabilities({
      maxDelayMs: maxDelayFor(o.delayLevels),
      maxPriority: o.maxPriority,
      leases: false,
      maxMessageBytes: o.maxMessageBytes,
      maxBatchSize: 1000,
      orderedDelivery: false,
    })
    this.#conn = new ConnectionManager({
      plan: o.connection,
      reconnectWaitMs: o.reconnectWaitMs,
      reconnect: o.reconnect,
      logger: this.#logger,
    })
    this.#topology = new Topology(this.#conn, o)
    this.#store = new Store(this.#conn, this.#topology, o.reconnectWaitMs)
  }

  /** Opens the connection: `connect()` rejects with `ERR_CONNECTION` when RabbitMQ cannot be reached. */
  protected open(): Promise<void> {
    return this.#conn.connect()
  }

  /**
   * Stop every consumer's subscription, let publishes and settles in flight finish (up to 5 s;
   * settles begun later reject with `ERR_CLOSED`), then close every consumer channel with the
   * AMQP handshake, so the acks sent on it are applied and RabbitMQ returns only the unsettled
   * deliveries, then close the connection (unless the caller owns it). Runs once, from
   * `close()`.
   */
  protected async shutdown(): Promise<void> {
    // No new deliveries while settles finish: one delivered now would only go back, flagged
    // redelivered (attempt + 1) without having run.
    await Promise.allSettled([...this.#consumers].map((c) => c.cancel()))
    // Settles next: a nack or dead letter whose copy is confirmed acks the original afterwards,
    // on its channel; closing that channel first would leave both copies in the queue.
    if (this.#inFlight.size > 0) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        Promise.allSettled([...this.#inFlight]),
        new Promise((resolve) => {
          timer = setTimeout(resolve, 5_000)
        }),
      ])
      clearTimeout(timer)
    }
    // Channels before the connection: a cancelled consumer's channel may still be in its closing
    // handshake (started by its last ack), and the connection's close would overtake those acks.
    await Promise.allSettled([...this.#consumers].map((c) => c.shutdown()))
    this.#consumers.clear()
    await this.#conn.close()
  }

  /** Store the messages durably: resolves when RabbitMQ confirmed all of them. */
  protected async publishChecked(queue: string, messages: readonly CheckedMessage[]): Promise<void> {
    await this.#ready()
    await this.#track(this.#store.publish(queue, messages))
  }

  /** Deliver from `queue`, at most `prefetch` unsettled at once (`leaseMs` is ignored: no leases). */
  protected async consumeChecked(
    queue: string,
    onDelivery: DeliveryHandler,
    options: CheckedConsumeOptions,
  ): Promise<Consumer> {
    await this.#ready()
    const consumer = new AmqpConsumer(
      {
        adapter: this.name,
        conn: this.#conn,
        topology: this.#topology,
        logger: this.#logger,
        maxDelayMs: this.capabilities.maxDelayMs,
        reconnect: this.#options.reconnect,
        assertOpen: (what) => this.assertOpen(what),
        republish: (q, m, n, d) => this.#track(this.#store.republish(q, m, n, d)),
        deadLetter: (q, m, info, attempt) => this.#track(this.#store.deadLetter(q, m, info, attempt)),
        track: (settle) => this.#track(settle),
      },
      queue,
      onDelivery,
      options.prefetch,
    )
    this.#consumers.add(consumer)
    try {
      await consumer.start()
    } catch (err) {
      this.#consumers.delete(consumer)
      throw err
    }
    return {
      cancel: async () => {
        await consumer.cancel()
        // A cancelled consumer stays known until its last delivery is settled, so that close()
        // can close its channel in order; forget the finished ones.
        for (const c of this.#consumers) if (c.finished) this.#consumers.delete(c)
      },
    }
  }

  protected async queueStats(queue: string): Promise<QueueStats> {
    await this.#admitAdmin(queue)
    return queueStats(this.#topology, queue)
  }

  protected async purgeQueue(queue: string): Promise<number> {
    await this.#admitAdmin(queue)
    return purgeQueue(this.#topology, queue)
  }

  protected async deadLetters(queue: string, limit: number): Promise<DeadLetter[]> {
    await this.#admitAdmin(queue)
    return listDeadLetters(this.#topology, queue, limit)
  }

  protected async requeueDead(queue: string, ids: readonly string[] | undefined): Promise<number> {
    await this.#admitAdmin(queue)
    return requeueDeadLetters(this.#topology, queue, ids)
  }

  protected async purgeDead(queue: string, ids: readonly string[] | undefined): Promise<number> {
    await this.#admitAdmin(queue)
    return purgeDeadLetters(this.#topology, queue, ids)
  }

  /**
   * Delete `queue` with its dead-letter and delay queues and every message in them (AMQP-only
   * admin call, for tests and tear-downs). Returns the number of messages deleted.
   */
  async deleteQueue(queue: string): Promise<number> {
    this.assertOpen('deleteQueue')
    this.checkQueue(queue)
    await this.#ready()
    return deleteQueue(this.#topology, queue)
  }

  /**
   * Queue names must also suit AMQP routing (see {@link checkQueueName}): the delay routes match
   * them with topic bindings.
   */
  protected override checkQueue(queue: string): void {
    super.checkQueue(queue)
    checkQueueName(queue)
  }

  /** Have `close()` wait (bounded) for a publish or settle on its way. */
  #track<T>(promise: Promise<T>): Promise<T> {
    this.#inFlight.add(promise)
    const done = () => this.#inFlight.delete(promise)
    promise.then(done, done)
    return promise
  }

  async #admitAdmin(queue: string): Promise<void> {
    await this.#ready()
    await this.#topology.ensureQueue(queue)
  }

  /** Connect on first use if the caller did not. */
  #ready(): Promise<void> | undefined {
    if (this.#conn.current !== undefined) return undefined
    return this.connect()
  }
}
