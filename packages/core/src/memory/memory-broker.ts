import type {
  Broker,
  BrokerCapabilities,
  ConsumeOptions,
  Consumer,
  DeadLetter,
  DeliveryHandler,
  ListDeadLettersOptions,
  OutgoingMessage,
  QueueStats,
} from '../broker.js'
import { brokerCapabilities } from '../broker.js'
import { DEFAULT_MAX_ENVELOPE_BYTES } from '../envelope.js'
import { ClosedError } from '../errors.js'
import { checkOutgoing } from '../outgoing.js'
import { type DeliverySource, MemoryDelivery, MemoryLeasedDelivery } from './memory-delivery.js'
import type { MemoryQueue, NewMessage, QueueConsumer } from './memory-queue.js'
import type { MemoryStore } from './memory-store.js'
import {
  DEFAULT_MEMORY_LEASE_MS,
  type MemoryBrokerOptions,
  parseBrokerOptions,
  selectStore,
} from './options.js'

const ADAPTER = { adapter: 'memory' } as const
/** A ref'd timer that never fires in practice: holds the process open like a socket would. */
const KEEP_ALIVE_MS = 2 ** 31 - 1

/**
 * A {@link Broker} in this process, with every semantic of a real one: delays of any length,
 * priorities 0..9, leases (redelivery with `attempt + 1` when one runs out, `extend` to keep
 * one), prefetch, competing consumers, dead letters, stats. Brokers on the same
 * {@link MemoryStore} share queues like connections to one server.
 *
 * Defaults: the process-wide store `default`; leases of 30 s; capabilities
 * `{ maxDelayMs: Number.MAX_SAFE_INTEGER, maxPriority: 9, leases: true, maxMessageBytes: 10 MiB,
 * maxBatchSize: 1000, orderedDelivery: false }`, each overridable to mimic a smaller store.
 *
 * While it has an active consumer, the broker keeps the process alive (as a socket would);
 * `close()` releases everything.
 *
 * @example
 * ```ts
 * const broker = new MemoryBroker({ url: 'memory://jobs' })
 * await broker.connect()
 * await broker.consume('q', (d) => void d.ack(), { prefetch: 10 })
 * await broker.publish('q', [{ body: new TextEncoder().encode('hi'), delayMs: 1000 }])
 * ```
 */
export class MemoryBroker implements Broker {
  /** Adapter name in errors and logs. */
  readonly name = 'memory'
  /** What this instance does natively (see the class summary for the defaults). */
  readonly capabilities: BrokerCapabilities
  /** The store this broker works on. */
  readonly store: MemoryStore
  readonly #leaseMs: number
  readonly #consumers = new Map<QueueConsumer, MemoryQueue>()
  /** Every queue this broker consumed from: closing returns its deliveries there. */
  readonly #consumed = new Set<MemoryQueue>()
  #closed = false
  #keepAlive: NodeJS.Timeout | undefined

  /** Throws `InvalidOptionError` naming the field when `options` are invalid. */
  constructor(options: MemoryBrokerOptions = {}) {
    const parsed = parseBrokerOptions(options)
    this.store = selectStore(parsed)
    this.capabilities = brokerCapabilities({
      maxDelayMs: Number.MAX_SAFE_INTEGER,
      maxPriority: 9,
      leases: true,
      maxMessageBytes: DEFAULT_MAX_ENVELOPE_BYTES,
      maxBatchSize: 1000,
      orderedDelivery: false,
      ...parsed.capabilities,
    })
    this.#leaseMs = parsed.leaseMs ?? DEFAULT_MEMORY_LEASE_MS
    this.store.attach()
  }

  /** Nothing to connect; rejects with `ERR_CLOSED` after `close()`. */
  async connect(): Promise<void> {
    this.#assertOpen()
  }

  /**
   * Stop every consumer of this broker and put their unsettled deliveries back on their queues
   * at once (redelivered with `attempt + 1`). Calling it again does nothing.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const [consumer, queue] of this.#consumers) queue.removeConsumer(consumer)
    this.#consumers.clear()
    for (const queue of this.#consumed) queue.returnUnsettled(this)
    this.#consumed.clear()
    this.#updateKeepAlive()
    this.store.detach()
  }

  /**
   * Store the messages (all or none: every message is checked first). Rejects with
   * `ERR_PAYLOAD_TOO_LARGE` over `maxMessageBytes`, `ERR_NOT_SUPPORTED` for a delay over
   * `maxDelayMs` or a priority over `maxPriority`, `TypeError` for malformed arguments.
   */
  async publish(queue: string, messages: readonly OutgoingMessage[]): Promise<void> {
    this.#assertOpen()
    checkQueue(queue)
    if (!Array.isArray(messages)) throw new TypeError('publish: messages must be an array')
    const batch = messages.map((message: OutgoingMessage, i) => this.#check(message, i))
    if (batch.length > 0) this.store.queue(queue).publish(batch)
  }

  /**
   * Deliver from `queue` to `onDelivery`, at most `prefetch` unsettled at once, each on a lease of
   * `leaseMs` (default: the broker's, 30 s) when leases are on. Deliveries arrive on a later
   * turn of the event loop, never inside the call that made them available.
   */
  async consume(queue: string, onDelivery: DeliveryHandler, options: ConsumeOptions): Promise<Consumer> {
    this.#assertOpen()
    checkQueue(queue)
    if (typeof onDelivery !== 'function') throw new TypeError('consume: onDelivery must be a function')
    const { prefetch, leaseMs } = options ?? {}
    if (!Number.isInteger(prefetch) || prefetch < 1) {
      throw new TypeError(`consume: prefetch must be an integer >= 1, got ${String(prefetch)}`)
    }
    if (leaseMs !== undefined && (!Number.isFinite(leaseMs) || leaseMs <= 0)) {
      throw new TypeError(`consume: leaseMs must be a finite number > 0, got ${String(leaseMs)}`)
    }
    const leases = this.capabilities.leases
    const memoryQueue = this.store.queue(queue)
    const consumer: QueueConsumer = {
      owner: this,
      prefetch,
      leaseMs: leases ? (leaseMs ?? this.#leaseMs) : Number.POSITIVE_INFINITY,
      unsettled: 0,
      active: true,
      deliver: (message, token) => {
        const source: DeliverySource = {
          queue: memoryQueue,
          consumer,
          maxDelayMs: this.capabilities.maxDelayMs,
          assertOpen: () => this.#assertOpen(),
        }
        onDelivery(
          leases
            ? new MemoryLeasedDelivery(source, message, token)
            : new MemoryDelivery(source, message, token),
        )
      },
    }
    this.#consumers.set(consumer, memoryQueue)
    this.#consumed.add(memoryQueue)
    memoryQueue.addConsumer(consumer)
    this.#updateKeepAlive()
    return {
      cancel: async () => {
        if (!this.#consumers.delete(consumer)) return
        memoryQueue.removeConsumer(consumer)
        this.#updateKeepAlive()
      },
    }
  }

  /** Ready, delayed, in-flight and dead counts of `queue`. */
  async stats(queue: string): Promise<QueueStats> {
    this.#assertOpen()
    checkQueue(queue)
    return this.store.queue(queue).stats()
  }

  /** Names of the queues that hold anything (ready, delayed, in flight or dead), sorted. */
  async listQueues(): Promise<string[]> {
    this.#assertOpen()
    return this.store.queueNames().filter((name) => {
      const s = this.store.queue(name).stats()
      return s.ready + (s.delayed ?? 0) + (s.inFlight ?? 0) + s.dead > 0
    })
  }

  /** Remove ready and delayed messages (not in-flight, not dead); returns the count. */
  async purge(queue: string): Promise<number> {
    this.#assertOpen()
    checkQueue(queue)
    return this.store.queue(queue).purge()
  }

  /** Dead letters of `queue`, oldest first, at most `limit` (default 100). */
  async listDeadLetters(queue: string, options: ListDeadLettersOptions = {}): Promise<DeadLetter[]> {
    this.#assertOpen()
    checkQueue(queue)
    const limit = options.limit ?? 100
    if (!Number.isInteger(limit) || limit < 0) {
      throw new TypeError(`listDeadLetters: limit must be an integer >= 0, got ${String(limit)}`)
    }
    return this.store.queue(queue).listDeadLetters(limit)
  }

  /** Put dead letters (all, or `ids`) back on the queue, bytes untouched; returns the count. */
  async requeueDeadLetters(queue: string, ids?: readonly string[]): Promise<number> {
    this.#assertOpen()
    checkQueue(queue)
    checkIds(ids)
    return this.store.queue(queue).requeueDeadLetters(ids)
  }

  /** Delete dead letters (all, or `ids`); returns the count. */
  async purgeDeadLetters(queue: string, ids?: readonly string[]): Promise<number> {
    this.#assertOpen()
    checkQueue(queue)
    checkIds(ids)
    return this.store.queue(queue).purgeDeadLetters(ids)
  }

  #check(message: OutgoingMessage, i: number): NewMessage {
    const { body, delayMs, priority } = checkOutgoing(message, i, this.capabilities, 'memory')
    return { body: new Uint8Array(body), delayMs, priority }
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('the broker is closed', ADAPTER)
  }

  #updateKeepAlive(): void {
    const active = this.#consumers.size > 0
    if (active && this.#keepAlive === undefined) {
      this.#keepAlive = setInterval(() => {}, KEEP_ALIVE_MS)
    } else if (!active && this.#keepAlive !== undefined) {
      clearInterval(this.#keepAlive)
      this.#keepAlive = undefined
    }
  }
}

function checkQueue(queue: string): void {
  if (typeof queue !== 'string' || queue.length === 0) {
    throw new TypeError('queue must be a non-empty string')
  }
}

function checkIds(ids: readonly string[] | undefined): void {
  if (ids !== undefined && (!Array.isArray(ids) || ids.some((id) => typeof id !== 'string'))) {
    throw new TypeError('ids must be an array of strings')
  }
}
