import {
  BrokerBase,
  type BrokerCapabilities,
  brokerCapabilities,
  type CheckedConsumeOptions,
  type CheckedMessage,
  type Consumer,
  type DeadLetter,
  type DeliveryHandler,
  type Logger,
  type OutgoingMessage,
  type QueueStats,
  type TransactionalBroker,
} from '@errand/core'
import type { z } from 'zod'
import { QueueAdmin } from './admin.js'
import { BrokerSql } from './broker-sql.js'
import { Db } from './connection.js'
import { type ConsumerHost, PgConsumer } from './consumer.js'
import type { PgDelivery } from './delivery.js'
import { Listener } from './listener.js'
import { JobsMaintenance, type JobsTableSize } from './maintenance.js'
import { queueChannel } from './migrations.js'
import {
  ADAPTER,
  brokerOptionsSchema,
  type PostgresBrokerOptions,
  parseOptions,
  resolveConnection,
} from './options.js'
import type { PgQueryable } from './pg-types.js'
import { MAX_PRIORITY } from './priority.js'
import { JobStore } from './store.js'
import { queueNameProblem } from './validate.js'

/** About 100 years: longer delays than this are refused (core hops them). */
const MAX_DELAY_MS = 100 * 365 * 24 * 3600 * 1000

/**
 * A Broker on PostgreSQL: one `jobs` table per schema, fetched with `FOR UPDATE SKIP LOCKED` in
 * batches up to the free prefetch, woken by LISTEN/NOTIFY, leased with a `locked_until` column,
 * deleted on ack. Publishing can join the caller's transaction ({@link publishInTransaction}).
 *
 * @example
 * ```ts
 * const broker = new PostgresBroker({ url: 'postgres://app@db/app' })
 * await broker.connect() // migrates the `errand` schema unless `migrate: false`
 * ```
 */
export class PostgresBroker extends BrokerBase implements TransactionalBroker<PgQueryable>, ConsumerHost {
  readonly name = ADAPTER
  readonly capabilities: BrokerCapabilities
  /** @internal The LISTEN connection consumers are woken through. */
  readonly listener: Listener
  private readonly db: Db
  private readonly sql: BrokerSql
  private readonly options: z.infer<typeof brokerOptionsSchema>
  private readonly migrateOnConnect: boolean
  private readonly maintenance: JobsMaintenance
  /** @internal The statements consumers and deliveries run. */
  readonly store: JobStore
  private readonly admin: QueueAdmin
  private readonly consumers = new Set<PgConsumer>()
  private readonly held = new Set<PgDelivery>()
  private readonly channels = new Map<string, string>()

  constructor(options: PostgresBrokerOptions) {
    super()
    this.options = parseOptions(brokerOptionsSchema, options)
    const resolved = resolveConnection(this.options)
    this.migrateOnConnect = resolved.migrate
    this.db = new Db(resolved)
    this.sql = new BrokerSql(resolved.schema, !(this.options.durableSettle ?? false))
    this.listener = new Listener(this.db)
    const channel = (queue: string) => this.channel(queue)
    this.maintenance = new JobsMaintenance(this.db, this.sql, this.options.vacuumAfterDeletes ?? 20_000)
    this.store = new JobStore(this.db, this.sql, this.maintenance, channel, this.options.maxStatementBytes)
    this.admin = new QueueAdmin(this.db, this.sql, this.maintenance, channel)
    this.capabilities = brokerCapabilities({
      maxDelayMs: MAX_DELAY_MS,
      maxPriority: MAX_PRIORITY,
      leases: true,
      maxMessageBytes: this.options.maxMessageBytes ?? 10 * 1024 * 1024,
      maxBatchSize: 1000,
      orderedDelivery: false,
    })
  }

  /** The logger this broker writes to (credentials masked). */
  get logger(): Logger {
    return this.db.logger
  }

  /** The schema holding the tables. */
  get schema(): string {
    return this.db.schema
  }

  /** Longest nack delay (`capabilities.maxDelayMs`), for deliveries. @internal */
  get maxDelayMs(): number {
    return this.capabilities.maxDelayMs
  }

  /** Migrates (unless disabled) and opens the LISTEN connection (`connect()`, once). */
  protected async open(): Promise<void> {
    try {
      if (this.migrateOnConnect) await this.db.migrate()
      await this.listener.start()
    } catch (err) {
      await this.listener.close()
      this.listener.reopen()
      throw this.db.wrap(err)
    }
  }

  /** Applies pending schema migrations; safe to run from many processes at once. */
  async migrate(): Promise<number[]> {
    this.assertOpen('migrate')
    return this.db.migrate()
  }

  /**
   * Online upkeep for after a large backlog drained: VACUUM the jobs table, then rebuild
   * (`REINDEX … CONCURRENTLY`) any index far larger than its rows need, so the table and its
   * indexes return to about their empty size. The broker VACUUMs by itself as it goes (see
   * `vacuumAfterDeletes`); indexes otherwise keep their high-water mark and reuse it for the
   * next backlog. Needs to own the table; one process at a time (others wait). `reindex: false`
   * only VACUUMs.
   */
  async maintain(
    options: { reindex?: boolean } = {},
  ): Promise<{ before: JobsTableSize; after: JobsTableSize; reindexed: string[] }> {
    this.assertOpen('maintain')
    return this.maintenance.maintain(options)
  }

  /** Sizes of the jobs table and its indexes, in bytes. */
  async tableSize(): Promise<JobsTableSize> {
    this.assertOpen('tableSize')
    return this.maintenance.size()
  }

  /**
   * `close()`: stops every consumer, waits for acks on their way, returns unsettled deliveries
   * to their queue at once, and closes the connections (a pool passed in stays open). Bounded
   * during an outage: retries stop after `closeTimeoutMs`, then connections are dropped (about
   * `closeTimeoutMs + connectTimeoutMs` at worst); what was not settled comes back by its lease.
   */
  protected shutdown(): Promise<void> {
    return this.db.shutdown(async () => {
      await Promise.all([...this.consumers].map((c) => c.cancel()))
      this.consumers.clear()
      await this.store.drained()
      // Held and not being settled: a settle on its way decides for itself.
      const unsettled = [...this.held].filter((d) => d.open)
      this.held.clear()
      if (unsettled.length > 0) {
        await this.store
          .release(unsettled.map((d) => ({ id: d.messageId, deliveries: d.attempt })))
          .catch((err: unknown) =>
            this.logger.warn(`could not return unsettled deliveries: ${(err as Error).message}`),
          )
      }
      for (const d of unsettled) d.release()
    }, this.listener)
  }

  protected publishChecked(queue: string, messages: readonly CheckedMessage[]): Promise<void> {
    return this.store.publish(queue, messages)
  }

  /**
   * Publishes with the caller's own `pg` client, typically inside their transaction: the jobs
   * exist iff that transaction commits, and consumers are woken (NOTIFY) only at commit. This is
   * core's `TransactionalBroker` interface, behind `app.send(sig, { tx })`.
   *
   * @example
   * ```ts
   * const client = await pool.connect()
   * await client.query('BEGIN')
   * await client.query('INSERT INTO orders …')
   * await broker.publishInTransaction(client, 'emails', [{ body }])
   * await client.query('COMMIT')
   * ```
   */
  async publishInTransaction(
    tx: PgQueryable,
    queue: string,
    messages: readonly OutgoingMessage[],
  ): Promise<void> {
    this.assertOpen('publishInTransaction')
    if (typeof tx !== 'object' || tx === null || typeof tx.query !== 'function') {
      throw new TypeError('publishInTransaction needs a pg client (an object with a query() method)')
    }
    // The checks of `publish` (BrokerBase), which the caller's transaction bypasses.
    const checked = this.checkPublish('publishInTransaction', queue, messages)
    if (checked.length === 0) return
    await this.store.publishWith(tx, queue, checked)
  }

  protected async consumeChecked(
    queue: string,
    onDelivery: DeliveryHandler,
    options: CheckedConsumeOptions,
  ): Promise<Consumer> {
    const consumer = new PgConsumer(
      this,
      {
        queue,
        channel: this.channel(queue),
        prefetch: options.prefetch,
        leaseMs: options.leaseMs ?? this.options.leaseMs ?? 30_000,
        pollIntervalMs: this.options.pollIntervalMs ?? 5000,
        closeTimeoutMs: this.db.closeTimeoutMs,
      },
      onDelivery,
    )
    this.consumers.add(consumer)
    await consumer.start()
    return {
      cancel: async () => {
        this.consumers.delete(consumer)
        await consumer.cancel()
      },
    }
  }

  /** Names the schema cannot store (see {@link queueNameProblem}): a stricter rule than the base's. */
  protected override queueProblem(queue: string): string | undefined {
    return queueNameProblem(queue)
  }

  protected queueStats(queue: string): Promise<QueueStats> {
    return this.admin.stats(queue)
  }

  protected purgeQueue(queue: string): Promise<number> {
    return this.admin.purge(queue)
  }

  protected deadLetters(queue: string, limit: number): Promise<DeadLetter[]> {
    return this.admin.listDeadLetters(queue, limit)
  }

  protected requeueDead(queue: string, ids: readonly string[] | undefined): Promise<number> {
    return this.admin.requeueDeadLetters(queue, ids)
  }

  protected purgeDead(queue: string, ids: readonly string[] | undefined): Promise<number> {
    return this.admin.purgeDeadLetters(queue, ids)
  }

  // ---- ConsumerHost / DeliveryHost (used by consumers and deliveries, not part of the API) ----

  /** @internal */
  track(delivery: PgDelivery): void {
    this.held.add(delivery)
  }

  /** @internal */
  forget(delivery: PgDelivery): void {
    this.held.delete(delivery)
  }

  private channel(queue: string): string {
    let channel = this.channels.get(queue)
    if (channel === undefined) {
      channel = queueChannel(this.db.schema, queue)
      if (this.channels.size > 10_000) this.channels.clear()
      this.channels.set(queue, channel)
    }
    return channel
  }
}
