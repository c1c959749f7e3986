import {
  BrokerBase,
  type BrokerCapabilities,
  brokerCapabilities,
  type CheckedConsumeOptions,
  type CheckedMessage,
  type Consumer,
  checkOutgoing,
  type DeadLetter,
  type DeadLetterInfo,
  type DeliveryHandler,
  type Logger,
  type OutgoingMessage,
  type QueueStats,
  type TransactionalBroker,
} from '@errand/core'
import { z } from 'zod'
import { BrokerSql } from './broker-sql.js'
import { Db, type RetryLimit } from './connection.js'
import { type ConsumerHost, type FetchedRow, PgConsumer } from './consumer.js'
import type { PgDelivery } from './delivery.js'
import { Listener } from './listener.js'
import { JobsMaintenance, type JobsTableSize } from './maintenance.js'
import { queueChannel } from './migrations.js'
import {
  ADAPTER,
  connectionOptionsShape,
  type PostgresConnectionOptions,
  parseOptions,
  resolveConnection,
} from './options.js'
import type { PgQueryable } from './pg-types.js'
import { MAX_PRIORITY } from './priority.js'
import { QueueAdmin } from './queue-admin.js'
import { Settler } from './settler.js'
import { checkQueue } from './validate.js'

/** Options of {@link PostgresBroker}. */
export interface PostgresBrokerOptions extends PostgresConnectionOptions {
  /** Lease of a delivery when `consume` gives none, in ms (default 30000). */
  readonly leaseMs?: number
  /** Safety poll of an idle consumer, in ms (default 5000); NOTIFY does the real waking. */
  readonly pollIntervalMs?: number
  /** Largest body accepted, in bytes (default 10 MiB). */
  readonly maxMessageBytes?: number
  /**
   * Run `VACUUM` on the jobs table after this many rows were deleted through this broker
   * (default 20000; 0 = never, leave it to autovacuum). One process at a time, in the background.
   */
  readonly vacuumAfterDeletes?: number
  /**
   * Wait for the WAL flush on leases and settles too (fetch, ack, nack, extend, dead-letter).
   * Default false: those commit asynchronously (publishes always wait). A crash of the server
   * (not a clean restart) can then forget the last few hundred ms of acks and leases: those
   * messages are delivered again, never lost, which at-least-once delivery allows anyway.
   */
  readonly durableSettle?: boolean
  /**
   * Most body bytes one insert statement carries (default 64 MiB; a `bytea` parameter is capped
   * at 1 GB). A larger batch is split into several statements in one transaction.
   */
  readonly maxStatementBytes?: number
}

const optionsSchema = z
  .object({
    ...connectionOptionsShape,
    leaseMs: z.number().int().min(1).optional(),
    pollIntervalMs: z.number().int().min(10).optional(),
    maxMessageBytes: z
      .number()
      .int()
      .min(1)
      .max(512 * 1024 * 1024)
      .optional(),
    vacuumAfterDeletes: z.number().int().min(0).optional(),
    durableSettle: z.boolean().optional(),
    maxStatementBytes: z
      .number()
      .int()
      .min(1)
      .max(512 * 1024 * 1024)
      .optional(),
  })
  .strict()

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
  readonly listener: Listener
  private readonly db: Db
  private readonly sql: BrokerSql
  private readonly options: z.infer<typeof optionsSchema>
  private readonly migrateOnConnect: boolean
  private readonly maintenance: JobsMaintenance
  private readonly settler: Settler
  private readonly admin: QueueAdmin
  private readonly consumers = new Set<PgConsumer>()
  private readonly held = new Set<PgDelivery>()
  private readonly channels = new Map<string, string>()

  constructor(options: PostgresBrokerOptions) {
    super()
    this.options = parseOptions(optionsSchema, options)
    const resolved = resolveConnection(this.options)
    this.migrateOnConnect = resolved.migrate
    this.db = new Db(resolved)
    this.sql = new BrokerSql(resolved.schema, !(this.options.durableSettle ?? false))
    this.listener = new Listener(this.db)
    const channel = (queue: string) => this.channel(queue)
    this.maintenance = new JobsMaintenance(this.db, this.sql, this.options.vacuumAfterDeletes ?? 20_000)
    this.settler = new Settler(this.db, this.sql, this.maintenance, channel)
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
      await this.settler.drained()
      // Held and not being settled: a settle on its way decides for itself.
      const unsettled = [...this.held].filter((d) => d.open)
      this.held.clear()
      if (unsettled.length > 0) {
        await this.settler
          .release(unsettled.map((d) => ({ id: d.messageId, deliveries: d.attempt })))
          .catch((err: unknown) =>
            this.logger.warn(`could not return unsettled deliveries: ${(err as Error).message}`),
          )
      }
      for (const d of unsettled) d.release()
    }, this.listener)
  }

  protected async publishChecked(queue: string, messages: readonly CheckedMessage[]): Promise<void> {
    const statements = this.insertStatements(queue, messages)
    if (statements.length === 1) {
      await this.db.query(statements[0]!, 'connect')
      return
    }
    // Very large batches: several statements, one transaction.
    await this.db.withClient(async (client) => {
      await client.query({ text: 'BEGIN' })
      try {
        for (const statement of statements) await client.query(statement)
        await client.query({ text: 'COMMIT' })
      } catch (err) {
        await client.query({ text: 'ROLLBACK' }).catch(() => undefined)
        throw err
      }
    })
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
    this.checkQueue(queue)
    if (!Array.isArray(messages)) throw new TypeError('publish: messages must be an array')
    if (messages.length === 0) return
    const checked = messages.map((m, i) => checkOutgoing(m, i, this.capabilities, ADAPTER))
    // No statement names: prepared statements on the caller's connection are the caller's.
    for (const statement of this.insertStatements(queue, checked)) {
      await tx.query({ text: statement.text, values: statement.values })
    }
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

  /** Refuses names the schema cannot store (see {@link checkQueue}): a stricter rule than the base's. */
  protected override checkQueue(queue: string): void {
    // Ours first: it covers the base rule with messages that say which part is wrong.
    checkQueue(queue)
    super.checkQueue(queue)
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
  async fetchJobs(queue: string, limit: number, leaseMs: number, retry: RetryLimit): Promise<FetchedRow[]> {
    const res = await this.db.query<FetchedRow>(
      { name: `${this.sql.prefix}fetch`, text: this.sql.fetch, values: [queue, limit, leaseMs] },
      'connect',
      retry,
    )
    return res.rows
  }

  /** @internal */
  async nextDue(queue: string): Promise<number | undefined> {
    const res = await this.db.query<{ wait_ms: number | null }>(
      { name: `${this.sql.prefix}next_due`, text: this.sql.nextDue, values: [queue] },
      'idempotent',
    )
    const wait = res.rows[0]?.wait_ms
    return wait === null || wait === undefined ? undefined : wait + 1
  }

  /** @internal */
  giveBackRows(rows: readonly FetchedRow[]): Promise<void> {
    return this.settler.giveBack(rows)
  }

  /** @internal */
  track(delivery: PgDelivery): void {
    this.held.add(delivery)
  }

  /** @internal */
  forget(delivery: PgDelivery): void {
    this.held.delete(delivery)
  }

  /** @internal */
  ackJob(id: string, deliveries: number, consumer: PgConsumer): Promise<undefined> {
    return this.settler.ack(id, deliveries, consumer)
  }

  /** @internal */
  nackJob(queue: string, id: string, deliveries: number, delayMs: number, limit: RetryLimit): Promise<void> {
    return this.settler.nack(queue, id, deliveries, delayMs, limit)
  }

  /** @internal */
  deadLetterJob(id: string, deliveries: number, info: DeadLetterInfo, limit: RetryLimit): Promise<void> {
    return this.settler.deadLetter(id, deliveries, info, limit)
  }

  /** @internal */
  extendJob(id: string, deliveries: number, ms: number, limit: RetryLimit): Promise<boolean> {
    return this.settler.extend(id, deliveries, ms, limit)
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

  private insertStatements(
    queue: string,
    messages: readonly CheckedMessage[],
  ): { name: string; text: string; values: unknown[] }[] {
    const priorities: number[] = []
    const delays: number[] = []
    const bodies: Buffer[] = []
    for (const m of messages) {
      priorities.push(m.priority)
      delays.push(m.delayMs)
      bodies.push(Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength))
    }
    return this.sql.insert(
      queue,
      priorities,
      delays,
      bodies,
      this.channel(queue),
      this.options.maxStatementBytes,
    )
  }
}
