import {
  BrokerBase,
  type BrokerCapabilities,
  brokerCapabilities,
  type CheckedConsumeOptions,
  type CheckedMessage,
  type Consumer,
  type DeadLetter,
  type DeliveryHandler,
  type QueueStats,
} from '@errand/core'
import type { z } from 'zod'
import { QueueAdmin } from './admin.js'
import { SqliteConnection } from './connection.js'
import { queueTopic, SqliteConsumer } from './consumer.js'
import { Cycle } from './cycle.js'
import type { SettleOp, SqliteDelivery } from './delivery.js'
import { type DatabaseSize, databaseSize, maintain } from './maintenance.js'
import {
  ADAPTER,
  brokerOptionsSchema,
  parseOptions,
  type ResolvedConnection,
  resolveConnection,
  type SqliteBrokerOptions,
} from './options.js'
import { Publisher } from './publisher.js'
import { JobStore, MAX_PRIORITY } from './store.js'

/** About 100 years: longer delays are refused (core hops them). */
const MAX_DELAY_MS = 100 * 365 * 24 * 3600 * 1000
/** A ref'd timer that never fires: holds the process open while consumers run, as a socket would. */
const KEEP_ALIVE_MS = 2 ** 31 - 1

/**
 * A Broker on one SQLite file: jobs are rows leased in batches by short `BEGIN IMMEDIATE`
 * transactions, acks delete them, a lease column brings back what a crashed worker held. Any
 * number of processes on one machine can share the file (WAL mode); consumers in this process are
 * woken at once by a publish here, and within a few ms by another process's (see `pollIntervalMs`).
 *
 * Defaults: leases of 30 s; capabilities `{ maxDelayMs: ~100 years, maxPriority: 9, leases: true,
 * maxMessageBytes: 10 MiB, maxBatchSize: 1000 (a hint: any batch is one transaction) }`.
 *
 * @example
 * ```ts
 * const broker = new SqliteBroker({ url: 'sqlite://./errand.db' })
 * await broker.connect() // creates and migrates the file
 * ```
 */
export class SqliteBroker extends BrokerBase {
  readonly name = ADAPTER
  readonly capabilities: BrokerCapabilities
  readonly #options: z.infer<typeof brokerOptionsSchema>
  readonly #resolved: ResolvedConnection
  /** Deliveries handed out and not settled: given back at close. */
  readonly #held = new Set<SqliteDelivery>()
  readonly #consumers = new Set<SqliteConsumer>()
  #connection: SqliteConnection | undefined
  #jobs: JobStore | undefined
  #cycle: Cycle | undefined
  #admin: QueueAdmin | undefined
  #publisher: Publisher | undefined
  #keepAlive: NodeJS.Timeout | undefined

  /** Throws `ERR_INVALID_OPTION` naming the field when `options` are invalid. Does not open the file. */
  constructor(options: SqliteBrokerOptions) {
    super()
    this.#options = parseOptions(brokerOptionsSchema, options)
    this.#resolved = resolveConnection(this.#options)
    this.capabilities = brokerCapabilities({
      maxDelayMs: MAX_DELAY_MS,
      maxPriority: MAX_PRIORITY,
      leases: true,
      maxMessageBytes: this.#options.maxMessageBytes ?? 10 * 1024 * 1024,
      maxBatchSize: 1000,
      orderedDelivery: false,
    })
  }

  /** The database file (absolute), or `:memory:`. */
  get path(): string {
    return this.#resolved.path
  }

  /**
   * Opens the file (shared with every other broker and backend of this process on the same path),
   * switches it to WAL and applies pending migrations. Idempotent. `ERR_CONNECTION` names the
   * path when the file or its directory cannot be written.
   */
  protected async open(): Promise<void> {
    const connection = await SqliteConnection.acquire(this.#resolved.path, this.#resolved.busyTimeoutMs)
    this.#connection = connection
    this.#jobs = new JobStore(connection)
    const sync = this.#resolved.durability === 'full' ? 'FULL' : 'NORMAL'
    this.#cycle = new Cycle(connection, this.#jobs, this.#resolved.logger, this.#resolved.busyTimeoutMs, sync)
    this.#admin = new QueueAdmin(connection, this.#resolved.busyTimeoutMs)
    const publishSync = this.#resolved.durability === 'process' ? 'NORMAL' : 'FULL'
    this.#publisher = new Publisher(connection, this.#jobs, this.#resolved.busyTimeoutMs, publishSync)
  }

  /**
   * Stops every consumer, finishes settles on their way, gives unsettled deliveries back to their
   * queue at once (waking consumers elsewhere), and releases the file.
   */
  protected async shutdown(): Promise<void> {
    const cycle = this.#cycle
    for (const consumer of this.#consumers) {
      cycle?.consumers.delete(consumer)
      await consumer.cancel()
    }
    this.#consumers.clear()
    this.#updateKeepAlive()
    const connection = this.#connection
    if (cycle === undefined || connection === undefined) return
    // Given back by the broker, not by the deliveries (settling them is refused once closed).
    const unsettled = [...this.#held].filter((d) => d.open)
    this.#held.clear()
    const releases = unsettled.map((d) => cycle.add(undefined, d, { kind: 'release' }).catch(() => false))
    for (const d of unsettled) d.release()
    await Promise.all(releases)
    await cycle.drained()
    cycle.stop(this.lifecycle.closedError('settle'))
    await this.#publisher?.drained()
    connection.release()
  }

  /**
   * Stores the messages in one transaction (all or none) and resolves once committed (after an
   * fsync unless `durability: 'process'`). The publishes of one event-loop turn share that
   * transaction (group commit). Wakes this process's consumers of `queue` at once.
   */
  protected async publishChecked(queue: string, messages: readonly CheckedMessage[]): Promise<void> {
    await this.connect()
    await this.#publisher!.publish(queue, messages)
  }

  /**
   * Delivers from `queue` to `onDelivery`, at most `prefetch` unsettled at once, each on a lease of
   * `leaseMs` (default: the broker's, 30 s). While it runs, the broker holds the process open.
   */
  protected async consumeChecked(
    queue: string,
    onDelivery: DeliveryHandler,
    options: CheckedConsumeOptions,
  ): Promise<Consumer> {
    const leaseMs = options.leaseMs ?? this.#options.leaseMs ?? 30_000
    await this.connect()
    this.assertOpen('consume')
    const cycle = this.#cycle!
    const consumer = new SqliteConsumer(
      {
        feed: this.#connection!.feed,
        maxDelayMs: this.capabilities.maxDelayMs,
        assertOpen: (what) => this.assertOpen(what),
        requestCycle: () => cycle.request(),
        apply: (from, d, op) => this.#apply(from, d, op),
        hold: (d) => this.#held.add(d),
        forget: (d) => this.#held.delete(d),
      },
      { queue, prefetch: options.prefetch, leaseMs, pollIntervalMs: this.#resolved.pollIntervalMs },
      onDelivery,
    )
    this.#consumers.add(consumer)
    cycle.consumers.add(consumer)
    this.#updateKeepAlive()
    consumer.start()
    return {
      cancel: async () => {
        if (!this.#consumers.delete(consumer)) return
        cycle.consumers.delete(consumer)
        await consumer.cancel()
        this.#updateKeepAlive()
      },
    }
  }

  /** Ready (due, including expired leases), delayed, in-flight and dead counts of `queue`. */
  protected async queueStats(queue: string): Promise<QueueStats> {
    await this.connect()
    return this.#admin!.stats(queue)
  }

  /** Removes ready and delayed messages (not in-flight, not dead); returns the count. */
  protected async purgeQueue(queue: string): Promise<number> {
    await this.connect()
    return this.#admin!.purge(queue)
  }

  /** Dead letters of `queue`, oldest first, at most `limit`. */
  protected async deadLetters(queue: string, limit: number): Promise<DeadLetter[]> {
    await this.connect()
    return this.#admin!.listDeadLetters(queue, limit)
  }

  /** Puts dead letters (all, or `ids`) back on the queue, bytes and priority untouched; returns the count. */
  protected async requeueDead(queue: string, ids: readonly string[] | undefined): Promise<number> {
    await this.connect()
    const moved = await this.#admin!.requeueDeadLetters(queue, ids)
    if (moved > 0) this.#connection!.feed.emit(queueTopic(queue))
    return moved
  }

  /** Deletes dead letters (all, or `ids`); returns the count. */
  protected async purgeDead(queue: string, ids: readonly string[] | undefined): Promise<number> {
    await this.connect()
    return this.#admin!.purgeDeadLetters(queue, ids)
  }

  /**
   * Gives the file's free pages back to the file system and truncates the WAL, e.g. after a large
   * backlog drained (SQLite otherwise keeps the pages for the next backlog). `full: true` runs
   * `VACUUM` (rewrites the file; needed once for a file created without auto-vacuum).
   */
  async maintain(options: { full?: boolean } = {}): Promise<{ before: DatabaseSize; after: DatabaseSize }> {
    this.assertOpen('maintain')
    await this.connect()
    return maintain(this.#connection!, this.#resolved.busyTimeoutMs, options)
  }

  /** Sizes of the file, its WAL and its free pages, in bytes. */
  async size(): Promise<DatabaseSize> {
    this.assertOpen('size')
    await this.connect()
    return databaseSize(this.#connection!)
  }

  /** A settle or extend of `delivery`, in the next cycle; a committed settle ends its tracking. */
  async #apply(
    consumer: SqliteConsumer | undefined,
    delivery: SqliteDelivery,
    op: SettleOp,
  ): Promise<boolean> {
    const matched = await this.#cycle!.add(consumer, delivery, op)
    if (op.kind !== 'extend') this.#held.delete(delivery)
    return matched
  }

  #updateKeepAlive(): void {
    const active = this.#consumers.size > 0
    if (active && this.#keepAlive === undefined) this.#keepAlive = setInterval(() => {}, KEEP_ALIVE_MS)
    else if (!active && this.#keepAlive !== undefined) {
      clearInterval(this.#keepAlive)
      this.#keepAlive = undefined
    }
  }
}
