import { randomUUID } from 'node:crypto'
import {
  type Broker,
  type BrokerCapabilities,
  brokerCapabilities,
  ClosedError,
  type ConsumeOptions,
  type Consumer,
  consoleLogger,
  type DeadLetter,
  type DeadLetterInfo,
  type DeliveryHandler,
  type ListDeadLettersOptions,
  type Logger,
  maskingLogger,
  NotSupportedError,
  type OutgoingMessage,
  PayloadTooLargeError,
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

const ADAPTER = { adapter: 'amqp' } as const

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
export class AmqpBroker implements Broker {
  readonly name = 'amqp'
  readonly capabilities: BrokerCapabilities
  readonly #options: ParsedAmqpOptions
  readonly #logger: Logger
  readonly #conn: ConnectionManager
  readonly #topology: Topology
  readonly #publisher: Publisher
  readonly #consumers = new Set<AmqpConsumer>()
  readonly #inFlight = new Set<Promise<unknown>>()
  #connecting: Promise<void> | undefined
  #closed = false

  /** Validates `options` (throws `ERR_INVALID_OPTION` naming the field); does not connect. */
  constructor(options: AmqpBrokerOptions | string) {
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
      initialDelayMs: o.reconnectInitialDelayMs,
      maxDelayMs: o.reconnectMaxDelayMs,
      logger: this.#logger,
    })
    this.#topology = new Topology(this.#conn, o)
    this.#publisher = new Publisher(this.#conn, o.reconnectWaitMs)
  }

  /** Open the connection. Rejects with `ERR_CONNECTION` when RabbitMQ cannot be reached. */
  connect(): Promise<void> {
    this.#assertOpen()
    this.#connecting ??= this.#conn.connect().catch((err: unknown) => {
      this.#connecting = undefined
      throw err
    })
    return this.#connecting
  }

  /**
   * Stop every consumer's subscription, let publishes and settles in flight finish (up to 5 s;
   * settles begun later reject with `ERR_CLOSED`), then close every consumer channel with the
   * AMQP handshake, so the acks sent on it are applied and RabbitMQ returns only the unsettled
   * deliveries, then close the connection (unless the caller owns it). Calling it again does
   * nothing.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
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

  /**
   * Store the messages durably: resolves when RabbitMQ confirmed all of them. Checks every
   * message first: `ERR_PAYLOAD_TOO_LARGE` over `maxMessageBytes`, `ERR_NOT_SUPPORTED` for a
   * delay over `maxDelayMs` or a priority over `maxPriority`, `TypeError` when malformed.
   */
  async publish(queue: string, messages: readonly OutgoingMessage[]): Promise<void> {
    this.#assertOpen()
    checkQueueName(queue)
    if (!Array.isArray(messages)) throw new TypeError('publish: messages must be an array')
    if (messages.length === 0) return
    let levels = 0
    const items: Outgoing[] = new Array(messages.length)
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i]!
      items[i] = this.#prepare(queue, message, i)
      if (message.delayMs !== undefined && message.delayMs > 0) levels |= Math.ceil(message.delayMs)
    }
    await this.#track(this.#send(queue, items, levels))
  }

  /** Deliver from `queue`, at most `prefetch` unsettled at once (`leaseMs` is ignored: no leases). */
  async consume(queue: string, onDelivery: DeliveryHandler, options: ConsumeOptions): Promise<Consumer> {
    this.#assertOpen()
    checkQueueName(queue)
    if (typeof onDelivery !== 'function') throw new TypeError('consume: onDelivery must be a function')
    const prefetch = options?.prefetch
    if (!Number.isInteger(prefetch) || prefetch < 1 || prefetch > 65_535) {
      throw new TypeError(`consume: prefetch must be an integer in 1..65535, got ${String(prefetch)}`)
    }
    await this.#ready()
    const consumer = new AmqpConsumer(
      {
        conn: this.#conn,
        topology: this.#topology,
        logger: this.#logger,
        settling: {
          maxDelayMs: this.capabilities.maxDelayMs,
          assertOpen: () => this.#assertOpen(),
          republish: (q, m, n, d) => this.#republish(q, m, n, d),
          deadLetter: (q, m, info, attempt) => this.#deadLetter(q, m, info, attempt),
          track: (settle) => this.#track(settle),
        },
        retryInitialMs: this.#options.reconnectInitialDelayMs,
        retryMaxMs: this.#options.reconnectMaxDelayMs,
      },
      queue,
      onDelivery,
      prefetch,
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
  async stats(queue: string): Promise<QueueStats> {
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
  async purge(queue: string): Promise<number> {
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

  /** The first `limit` (default 100) dead letters of `queue`, oldest first. */
  async listDeadLetters(queue: string, options: ListDeadLettersOptions = {}): Promise<DeadLetter[]> {
    const limit = options.limit ?? 100
    if (!Number.isInteger(limit) || limit < 0) {
      throw new TypeError(`listDeadLetters: limit must be an integer >= 0, got ${String(limit)}`)
    }
    await this.#admitAdmin(queue)
    if (limit === 0) return []
    return this.#topology.admin((_ch, session) => listDeadLetters(session, queue, limit))
  }

  /** Put dead letters (all, or `ids`) back on `queue` with their original bytes; returns how many. */
  async requeueDeadLetters(queue: string, ids?: readonly string[]): Promise<number> {
    checkIds(ids)
    await this.#admitAdmin(queue)
    return this.#topology.admin((_ch, session) => requeueDeadLetters(session, queue, ids))
  }

  /** Delete dead letters (all, or `ids`); returns how many. */
  async purgeDeadLetters(queue: string, ids?: readonly string[]): Promise<number> {
    checkIds(ids)
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
    this.#assertOpen()
    checkQueueName(queue)
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

  #prepare(queue: string, message: OutgoingMessage, i: number): Outgoing {
    if (typeof message !== 'object' || message === null || !(message.body instanceof Uint8Array)) {
      throw new TypeError(`publish: messages[${i}].body must be a Uint8Array`)
    }
    const { maxMessageBytes, maxDelayMs, maxPriority } = this.capabilities
    const body = message.body
    if (body.byteLength > maxMessageBytes)
      throw new PayloadTooLargeError(body.byteLength, maxMessageBytes, ADAPTER)
    const delayMs = message.delayMs ?? 0
    if (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0) {
      throw new TypeError(`publish: messages[${i}].delayMs must be a finite number >= 0`)
    }
    if (delayMs > maxDelayMs)
      throw new NotSupportedError(`delay of ${delayMs} ms is over maxDelayMs ${maxDelayMs}`, ADAPTER)
    const priority = message.priority ?? 0
    if (!Number.isInteger(priority) || priority < 0) {
      throw new TypeError(`publish: messages[${i}].priority must be an integer >= 0`)
    }
    if (priority > maxPriority)
      throw new NotSupportedError(`priority ${priority} is over maxPriority ${maxPriority}`, ADAPTER)
    const options: Outgoing['options'] = { persistent: true, mandatory: true, messageId: randomUUID() }
    if (priority > 0) options.priority = priority
    const content = Buffer.from(body.buffer, body.byteOffset, body.byteLength)
    if (delayMs > 0) {
      const { exchange, routingKey } = delayRoute(queue, delayMs)
      return { exchange, routingKey, content, options }
    }
    return { exchange: '', routingKey: queue, content, options }
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
    this.#assertOpen()
    checkQueueName(queue)
    await this.#ready()
    await this.#topology.ensureQueue(queue)
  }

  /** Connect on first use if the caller did not. */
  #ready(): Promise<void> | undefined {
    if (this.#conn.current !== undefined) return undefined
    return this.connect()
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('the broker is closed', ADAPTER)
  }
}

function copyPriority(message: ConsumeMessage, options: Options.Publish): void {
  if (typeof message.properties.priority === 'number' && message.properties.priority > 0) {
    options.priority = message.properties.priority
  }
}

function checkIds(ids: readonly string[] | undefined): void {
  if (ids !== undefined && (!Array.isArray(ids) || ids.some((id) => typeof id !== 'string'))) {
    throw new TypeError('ids must be an array of strings')
  }
}
