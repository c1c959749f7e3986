import { randomUUID } from 'node:crypto'
import {
  BrokerBase,
  type BrokerCapabilities,
  brokerCapabilities,
  type CheckedConsumeOptions,
  type CheckedMessage,
  type Consumer,
  consoleLogger,
  type DeadLetter,
  type DeadLetterInfo,
  type DeliveryHandler,
  type Logger,
  maskingLogger,
  type QueueStats,
} from '@errand/core'
import type { ConsumeMessage, Options } from 'amqplib'
import { ConnectionManager } from './connection.js'
import { AmqpConsumer } from './consumer.js'
import { listDeadLetters, purgeDeadLettersById, requeueDeadLetters } from './dead-letters.js'
import { carriedHeaders, deadLetterHeaders, H_DELIVERIES, messageIdOf } from './headers.js'
import {
  checkQueueName,
  deadQueueName,
  delayQueueName,
  delayRoute,
  MAX_DELAY_LEVELS,
  maxDelayFor,
} from './names.js'
import { type AmqpBrokerOptions, type ParsedAmqpOptions, parseOptions } from './options.js'
import { type Outgoing, Publisher, UnroutableError } from './publisher.js'
import { serverCode, Topology } from './topology.js'

/**
 * A {@link Broker} on RabbitMQ (AMQP 0-9-1) with amqplib, no plugins needed.
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
  readonly #publisher: Publisher
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
    this.#publisher = new Publisher(this.#conn, o.reconnectWaitMs)
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
    let levels = 0
    const items = messages.map((message) => {
      levels |= message.delayMs
      return outgoing(queue, message)
    })
    await this.#track(this.#send(queue, items, levels))
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
        republish: (q, m, n, d) => this.#republish(q, m, n, d),
        deadLetter: (q, m, info, attempt) => this.#deadLetter(q, m, info, attempt),
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

  /** Ready messages, delayed ones (in the delay levels), dead letters. In-flight: unknown to AMQP. */
  protected async queueStats(queue: string): Promise<QueueStats> {
    await this.#admitAdmin(queue)
    const counts = await this.#topology.admin(async (ch) => {
      const work = await ch.assertQueue(queue, this.#topology.workQueueOptions())
      const dead = await ch.assertQueue(deadQueueName(queue), this.#topology.deadQueueOptions())
      return { ready: work.messageCount, dead: dead.messageCount }
    }, queue)
    let delayed = 0
    for (const n of (await this.#topology.existingLevels(queue)).values()) delayed += n
    return { ready: counts.ready, delayed, inFlight: undefined, dead: counts.dead }
  }

  /** Remove the ready and delayed messages of `queue`; returns how many. */
  protected async purgeQueue(queue: string): Promise<number> {
    await this.#admitAdmin(queue)
    const ready = await this.#topology.admin(async (ch) => (await ch.purgeQueue(queue)).messageCount)
    const levels = [...(await this.#topology.existingLevels(queue)).keys()]
    if (levels.length === 0) return ready
    const delayed = await this.#topology.admin(async (ch) => {
      let m = 0
      for (const level of levels) m += (await ch.purgeQueue(delayQueueName(queue, level))).messageCount
      return m
    })
    return ready + delayed
  }

  /** The first `limit` dead letters of `queue`, oldest first. */
  protected async deadLetters(queue: string, limit: number): Promise<DeadLetter[]> {
    await this.#admitAdmin(queue)
    return this.#topology.admin((_ch, session) => listDeadLetters(session, queue, limit))
  }

  /** Put dead letters (all, or `ids`) back on `queue` with their original bytes; returns how many. */
  protected async requeueDead(queue: string, ids: readonly string[] | undefined): Promise<number> {
    await this.#admitAdmin(queue)
    return this.#topology.admin((_ch, session) => requeueDeadLetters(session, queue, ids))
  }

  /** Delete dead letters (all, or `ids`); returns how many. */
  protected async purgeDead(queue: string, ids: readonly string[] | undefined): Promise<number> {
    await this.#admitAdmin(queue)
    if (ids === undefined) {
      return this.#topology.admin(async (ch) => (await ch.purgeQueue(deadQueueName(queue))).messageCount)
    }
    return this.#topology.admin((_ch, session) => purgeDeadLettersById(session, queue, ids))
  }

  /**
   * Delete `queue` with its dead-letter and delay queues and every message in them (AMQP-only
   * admin call, for tests and tear-downs). Returns the number of messages deleted.
   */
  async deleteQueue(queue: string): Promise<number> {
    this.assertOpen('deleteQueue')
    this.checkQueue(queue)
    await this.#ready()
    let n = 0
    const names = [queue, deadQueueName(queue)]
    for (let level = 0; level < MAX_DELAY_LEVELS; level++) names.push(delayQueueName(queue, level))
    await this.#topology.fanOut(
      names.map((name) => async (ch) => {
        const { messageCount } = await ch.deleteQueue(name)
        n += messageCount
      }),
    )
    this.#topology.forget(queue)
    return n
  }

  /**
   * Queue names must also suit AMQP routing (see {@link checkQueueName}): the delay routes match
   * them with topic bindings.
   */
  protected override checkQueue(queue: string): void {
    super.checkQueue(queue)
    checkQueueName(queue)
  }

  /** Publish `items` to `queue`, first declaring its delay levels in the bit mask `levels`. */
  async #send(queue: string, items: readonly Outgoing[], levels: number): Promise<void> {
    await this.#ready()
    for (let tries = 0; ; tries++) {
      if (!this.#topology.isReady(queue)) await this.#topology.ensureQueue(queue)
      if (levels !== 0) await this.#topology.ensureLevels(queue, levels)
      try {
        await this.#publisher.send(items)
        return
      } catch (err) {
        // Someone deleted a queue (unroutable) or a delay exchange (404) under us: declare again, once.
        if (tries > 0) throw err
        if (err instanceof UnroutableError) this.#topology.forget(queue)
        else if (serverCode((err as Error).cause) === 404) this.#topology.reset()
        else throw err
      }
    }
  }

  /** A copy of a delivered message with the deliveries counted so far, to `queue` after `delayMs`. */
  #republish(queue: string, message: ConsumeMessage, deliveries: number, delayMs: number): Promise<void> {
    const headers = carriedHeaders(message)
    headers[H_DELIVERIES] = deliveries
    const options: Outgoing['options'] = {
      persistent: true,
      mandatory: true,
      messageId: messageIdOf(message),
      headers,
    }
    copyPriority(message, options)
    const route = delayMs > 0 ? delayRoute(queue, delayMs) : { exchange: '', routingKey: queue }
    return this.#track(
      this.#send(
        queue,
        [{ ...route, content: message.content, options }],
        delayMs > 0 ? Math.ceil(delayMs) : 0,
      ),
    )
  }

  #deadLetter(queue: string, message: ConsumeMessage, info: DeadLetterInfo, attempt: number): Promise<void> {
    const options: Outgoing['options'] = {
      persistent: true,
      mandatory: true,
      messageId: messageIdOf(message),
      headers: deadLetterHeaders(message, queue, info.reason, info.error, attempt),
    }
    copyPriority(message, options)
    return this.#track(
      this.#send(
        queue,
        [{ exchange: '', routingKey: deadQueueName(queue), content: message.content, options }],
        0,
      ),
    )
  }

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

function copyPriority(message: ConsumeMessage, options: Options.Publish): void {
  if (typeof message.properties.priority === 'number' && message.properties.priority > 0) {
    options.priority = message.properties.priority
  }
}

/** A checked message as it goes on the wire: persistent, mandatory, with a fresh message id. */
function outgoing(queue: string, message: CheckedMessage): Outgoing {
  const options: Outgoing['options'] = { persistent: true, mandatory: true, messageId: randomUUID() }
  if (message.priority > 0) options.priority = message.priority
  const body = message.body
  const content = Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  const route = message.delayMs > 0 ? delayRoute(queue, message.delayMs) : { exchange: '', routingKey: queue }
  return { ...route, content, options }
}
