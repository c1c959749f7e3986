import type { BrokerCapabilities, Consumer, DeadLetter, DeliveryHandler, QueueStats } from '../broker.js'
import { brokerCapabilities } from '../broker.js'
import { DEFAULT_MAX_ENVELOPE_BYTES } from '../envelope.js'
import { BrokerBase } from '../kit/broker-base.js'
import type { CheckedConsumeOptions } from '../kit/consume-options.js'
import type { CheckedMessage } from '../outgoing.js'
import { MemoryDelivery, type MemoryDeliveryHost, MemoryLeasedDelivery } from './memory-delivery.js'
import type { MemoryQueue, QueueConsumer } from './memory-queue.js'
import type { MemoryStore } from './memory-store.js'
import {
  DEFAULT_MEMORY_LEASE_MS,
  type MemoryBrokerOptions,
  parseBrokerOptions,
  selectStore,
} from './options.js'

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
export class MemoryBroker extends BrokerBase {
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
  #keepAlive: NodeJS.Timeout | undefined

  /** Throws `InvalidOptionError` naming the field when `options` are invalid. */
  constructor(options: MemoryBrokerOptions = {}) {
    super()
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

  /** Nothing to connect to. */
  protected async open(): Promise<void> {}

  /**
   * Stop every consumer of this broker and put their unsettled deliveries back on their queues
   * at once (redelivered with `attempt + 1`).
   */
  protected async shutdown(): Promise<void> {
    for (const [consumer, queue] of this.#consumers) queue.removeConsumer(consumer)
    this.#consumers.clear()
    for (const queue of this.#consumed) queue.returnUnsettled(this)
    this.#consumed.clear()
    this.#updateKeepAlive()
    this.store.detach()
  }

  /** Store the messages (all or none: BrokerBase checked every one first). */
  protected async publishChecked(queue: string, messages: readonly CheckedMessage[]): Promise<void> {
    this.store
      .queue(queue)
      .publish(
        messages.map((m) => ({ body: new Uint8Array(m.body), delayMs: m.delayMs, priority: m.priority })),
      )
  }

  /**
   * Deliver from `queue` to `onDelivery`, at most `prefetch` unsettled at once, each on a lease of
   * `leaseMs` (default: the broker's, 30 s) when leases are on. Deliveries arrive on a later
   * turn of the event loop, never inside the call that made them available.
   */
  protected async consumeChecked(
    queue: string,
    onDelivery: DeliveryHandler,
    { prefetch, leaseMs }: CheckedConsumeOptions,
  ): Promise<Consumer> {
    const leases = this.capabilities.leases
    const memoryQueue = this.store.queue(queue)
    const consumer: QueueConsumer = {
      owner: this,
      prefetch,
      leaseMs: leases ? (leaseMs ?? this.#leaseMs) : Number.POSITIVE_INFINITY,
      unsettled: 0,
      active: true,
      deliver: (message, token) => {
        onDelivery(
          leases ? new MemoryLeasedDelivery(host, message, token) : new MemoryDelivery(host, message, token),
        )
      },
    }
    const host: MemoryDeliveryHost = {
      adapter: this.name,
      queue: memoryQueue,
      maxDelayMs: this.capabilities.maxDelayMs,
      assertOpen: (what) => this.assertOpen(what),
      released: () => {
        consumer.unsettled--
        memoryQueue.wake()
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
  protected async queueStats(queue: string): Promise<QueueStats> {
    return this.store.queue(queue).stats()
  }

  /** Names of the queues that hold anything (ready, delayed, in flight or dead), sorted. */
  async listQueues(): Promise<string[]> {
    this.assertOpen('listQueues')
    return this.store.queueNames().filter((name) => {
      const s = this.store.queue(name).stats()
      return s.ready + (s.delayed ?? 0) + (s.inFlight ?? 0) + s.dead > 0
    })
  }

  /** Remove ready and delayed messages (not in-flight, not dead); returns the count. */
  protected async purgeQueue(queue: string): Promise<number> {
    return this.store.queue(queue).purge()
  }

  /** Dead letters of `queue`, oldest first, at most `limit`. */
  protected async deadLetters(queue: string, limit: number): Promise<DeadLetter[]> {
    return this.store.queue(queue).listDeadLetters(limit)
  }

  /** Put dead letters (all, or `ids`) back on the queue, bytes untouched; returns the count. */
  protected async requeueDead(queue: string, ids: readonly string[] | undefined): Promise<number> {
    return this.store.queue(queue).requeueDeadLetters(ids)
  }

  /** Delete dead letters (all, or `ids`); returns the count. */
  protected async purgeDead(queue: string, ids: readonly string[] | undefined): Promise<number> {
    return this.store.queue(queue).purgeDeadLetters(ids)
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
