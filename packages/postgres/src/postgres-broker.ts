import {
  type Broker,
  type BrokerCapabilities,
  brokerCapabilities,
  type ConsumeOptions,
  type Consumer,
  checkOutgoing,
  type DeadLetter,
  type DeadLetterInfo,
  type DeadLetterReason,
  type DeliveryHandler,
  type ListDeadLettersOptions,
  type OutgoingMessage,
  type QueueStats,
  type SerializedError,
} from '@errand/core'
import { z } from 'zod'
import { Batcher } from './batcher.js'
import { BrokerSql } from './broker-sql.js'
import { Db } from './connection.js'
import { type ConsumerHost, type FetchedRow, PgConsumer } from './consumer.js'
import type { DeliveryOwner, PgDelivery } from './delivery.js'
import { Listener } from './listener.js'
import { queueChannel } from './migrations.js'
import {
  ADAPTER,
  connectionOptionsShape,
  type PostgresConnectionOptions,
  type PostgresLogger,
  parseOptions,
  resolveConnection,
} from './options.js'
import type { PgQueryable } from './pg-types.js'
import { MAX_PRIORITY } from './priority.js'

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
  })
  .strict()

/** About 100 years: longer delays than this are refused (core hops them). */
const MAX_DELAY_MS = 100 * 365 * 24 * 3600 * 1000
const MAX_QUEUE_NAME = 200

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
export class PostgresBroker implements Broker, ConsumerHost {
  readonly name = ADAPTER
  readonly capabilities: BrokerCapabilities
  readonly listener: Listener
  private readonly db: Db
  private readonly sql: BrokerSql
  private readonly options: z.infer<typeof optionsSchema>
  private readonly migrateOnConnect: boolean
  private readonly acks: Batcher<PendingAck, undefined>
  private readonly consumers = new Set<PgConsumer>()
  private readonly held = new Set<PgDelivery>()
  private readonly channels = new Map<string, string>()
  private connected: Promise<void> | undefined
  private closing: Promise<void> | undefined
  private deletesSinceVacuum = 0
  private vacuuming = false

  constructor(options: PostgresBrokerOptions) {
    this.options = parseOptions(optionsSchema, options)
    const resolved = resolveConnection(this.options)
    this.migrateOnConnect = resolved.migrate
    this.db = new Db(resolved)
    this.sql = new BrokerSql(resolved.schema, !(this.options.durableSettle ?? false))
    this.listener = new Listener(this.db)
    this.acks = new Batcher((items) => this.flushAcks(items))
    this.capabilities = brokerCapabilities({
      maxDelayMs: MAX_DELAY_MS,
      maxPriority: MAX_PRIORITY,
      leases: true,
      maxMessageBytes: this.options.maxMessageBytes ?? 10 * 1024 * 1024,
      maxBatchSize: 1000,
      orderedDelivery: false,
    })
  }

  get logger(): PostgresLogger {
    return this.db.logger
  }

  /** The schema holding the tables. */
  get schema(): string {
    return this.db.schema
  }

  /** Migrates (unless disabled) and opens the LISTEN connection. Idempotent. */
  async connect(): Promise<void> {
    this.db.assertOpen('connect')
    this.connected ??= (async () => {
      if (this.migrateOnConnect) await this.db.migrate()
      await this.listener.start()
    })().catch(async (err: unknown) => {
      this.connected = undefined
      await this.listener.close()
      this.listener.reopen()
      throw this.db.wrap(err)
    })
    await this.connected
  }

  /** Applies pending schema migrations; safe to run from many processes at once. */
  async migrate(): Promise<number[]> {
    this.db.assertOpen('migrate')
    return this.db.migrate()
  }

  /**
   * Stops every consumer, waits for acks on their way, returns unsettled deliveries to their
   * queue at once, and closes the connections (a pool passed in stays open).
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown()
    return this.closing
  }

  private async shutdown(): Promise<void> {
    await Promise.all([...this.consumers].map((c) => c.cancel()))
    this.consumers.clear()
    await this.acks.drained()
    const unsettled = [...this.held]
    this.held.clear()
    if (unsettled.length > 0 && this.connected !== undefined) {
      await this.releaseRows(
        unsettled.map((d) => ({ id: d.messageId, deliveries: d.attempt, priority: 0, body: d.body })),
      ).catch((err: unknown) =>
        this.logger.warn(`could not return unsettled deliveries: ${(err as Error).message}`),
      )
    }
    for (const d of unsettled) d.abandon()
    await this.listener.close()
    await this.db.close()
  }

  async publish(queue: string, messages: readonly OutgoingMessage[]): Promise<void> {
    this.db.assertOpen('publish')
    const query = this.insertQuery(queue, messages)
    if (query === undefined) return
    await this.db.query(query, 'connect')
  }

  /**
   * Publishes with the caller's own `pg` client, typically inside their transaction: the jobs
   * exist iff that transaction commits, and consumers are woken (NOTIFY) only at commit.
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
    tx: unknown,
    queue: string,
    messages: readonly OutgoingMessage[],
  ): Promise<void> {
    this.db.assertOpen('publishInTransaction')
    if (typeof tx !== 'object' || tx === null || typeof (tx as PgQueryable).query !== 'function') {
      throw new TypeError('publishInTransaction needs a pg client (an object with a query() method)')
    }
    const query = this.insertQuery(queue, messages)
    if (query === undefined) return
    await (tx as PgQueryable).query({ text: query.text, values: query.values ?? [] })
  }

  async consume(queue: string, onDelivery: DeliveryHandler, options: ConsumeOptions): Promise<Consumer> {
    this.db.assertOpen('consume')
    checkQueue(queue)
    if (typeof onDelivery !== 'function') throw new TypeError('consume needs a delivery handler function')
    if (!Number.isInteger(options.prefetch) || options.prefetch < 1) {
      throw new TypeError(`prefetch must be an integer >= 1, got ${options.prefetch}`)
    }
    const leaseMs = options.leaseMs ?? this.options.leaseMs ?? 30_000
    if (!Number.isFinite(leaseMs) || leaseMs <= 0) throw new TypeError(`leaseMs must be > 0, got ${leaseMs}`)
    const consumer = new PgConsumer(
      this,
      {
        queue,
        channel: this.channel(queue),
        prefetch: options.prefetch,
        leaseMs,
        pollIntervalMs: this.options.pollIntervalMs ?? 5000,
      },
      onDelivery,
    )
    this.consumers.add(consumer)
    await consumer.start()
    const cancel = consumer.cancel.bind(consumer)
    return {
      cancel: async () => {
        this.consumers.delete(consumer)
        await cancel()
      },
    }
  }

  async stats(queue: string): Promise<QueueStats> {
    this.db.assertOpen('stats')
    checkQueue(queue)
    const res = await this.db.query<{ ready: number; delayed: number; in_flight: number; dead: number }>(
      { text: this.sql.stats, values: [queue] },
      'idempotent',
    )
    const row = res.rows[0]
    return {
      ready: row?.ready ?? 0,
      delayed: row?.delayed ?? 0,
      inFlight: row?.in_flight ?? 0,
      dead: row?.dead ?? 0,
    }
  }

  async purge(queue: string): Promise<number> {
    this.db.assertOpen('purge')
    checkQueue(queue)
    const res = await this.db.query({ text: this.sql.purge, values: [queue] }, 'idempotent')
    this.deleted(res.rowCount ?? 0)
    return res.rowCount ?? 0
  }

  async listDeadLetters(queue: string, options: ListDeadLettersOptions = {}): Promise<DeadLetter[]> {
    this.db.assertOpen('listDeadLetters')
    checkQueue(queue)
    const limit = options.limit ?? 100
    if (!Number.isInteger(limit) || limit < 1)
      throw new TypeError(`limit must be an integer >= 1, got ${limit}`)
    const res = await this.db.query<{
      id: string
      reason: string
      error: string | null
      body: Buffer
      dead_at: number
    }>({ text: this.sql.listDead, values: [queue, limit] }, 'idempotent')
    return res.rows.map((r) => ({
      id: r.id,
      queue,
      reason: r.reason as DeadLetterReason,
      error: r.error === null ? undefined : (JSON.parse(r.error) as SerializedError),
      body: r.body,
      deadAt: Math.round(r.dead_at),
    }))
  }

  async requeueDeadLetters(queue: string, ids?: readonly string[]): Promise<number> {
    this.db.assertOpen('requeueDeadLetters')
    checkQueue(queue)
    const res = await this.db.query<{ n: number }>(
      { text: this.sql.requeueDead, values: [queue, idArray(ids), this.channel(queue)] },
      'connect',
    )
    return res.rows[0]?.n ?? 0
  }

  async purgeDeadLetters(queue: string, ids?: readonly string[]): Promise<number> {
    this.db.assertOpen('purgeDeadLetters')
    checkQueue(queue)
    const res = await this.db.query({ text: this.sql.purgeDead, values: [queue, idArray(ids)] }, 'idempotent')
    return res.rowCount ?? 0
  }

  // ---- ConsumerHost / DeliveryHost ----

  assertOpen(what: string): void {
    this.db.assertOpen(what)
  }

  async fetchJobs(queue: string, limit: number, leaseMs: number): Promise<FetchedRow[]> {
    const res = await this.db.query<FetchedRow>(
      { name: `${this.sql.prefix}fetch`, text: this.sql.fetch, values: [queue, limit, leaseMs] },
      'connect',
    )
    return res.rows
  }

  async nextDue(queue: string): Promise<number | undefined> {
    const res = await this.db.query<{ wait_ms: number | null }>(
      { name: `${this.sql.prefix}next_due`, text: this.sql.nextDue, values: [queue] },
      'idempotent',
    )
    const wait = res.rows[0]?.wait_ms
    return wait === null || wait === undefined ? undefined : wait + 1
  }

  async releaseRows(rows: readonly FetchedRow[]): Promise<void> {
    const res = await this.db.query<{ queue: string }>(
      { text: this.sql.release, values: [rows.map((r) => r.id), rows.map((r) => r.deliveries)] },
      'idempotent',
    )
    // Wake other consumers of those queues: the rows are ready again now.
    const queues = res.rows.map((r) => r.queue)
    if (queues.length > 0) {
      await this.db
        .query(
          {
            text: "SELECT pg_notify(c, '') FROM unnest($1::text[]) AS c",
            values: [queues.map((q) => this.channel(q))],
          },
          'idempotent',
        )
        .catch(() => undefined)
    }
  }

  track(delivery: PgDelivery): void {
    this.held.add(delivery)
  }

  forget(delivery: PgDelivery): void {
    this.held.delete(delivery)
  }

  ackJob(id: string, deliveries: number, owner: DeliveryOwner): Promise<void> {
    return this.acks.add({ id, deliveries, owner })
  }

  async nackJob(queue: string, id: string, deliveries: number, delayMs: number): Promise<void> {
    await this.db.query(
      {
        name: `${this.sql.prefix}nack`,
        text: this.sql.nack,
        values: [id, deliveries, delayMs, this.channel(queue)],
      },
      'idempotent',
    )
  }

  async deadLetterJob(id: string, deliveries: number, info: DeadLetterInfo): Promise<void> {
    const error = info.error === undefined ? null : JSON.stringify(info.error)
    // Idempotent: a retry after a lost reply finds no row (the token no longer matches) and moves nothing.
    const res = await this.db.query(
      {
        name: `${this.sql.prefix}dead`,
        text: this.sql.deadLetter,
        values: [id, deliveries, info.reason, error],
      },
      'idempotent',
    )
    this.deleted(res.rowCount ?? 0)
  }

  async extendJob(id: string, deliveries: number, ms: number): Promise<void> {
    await this.db.query(
      { name: `${this.sql.prefix}extend`, text: this.sql.extend, values: [id, deliveries, ms] },
      'idempotent',
    )
  }

  /**
   * One statement for every ack of the batch (each matching its lease token). When a consumer
   * with more work waiting owns some of these acks, the same statement also fetches its next
   * rows: one round trip and one commit per cycle instead of two.
   */
  private async flushAcks(items: PendingAck[]): Promise<undefined[]> {
    const ids = arrayLiteral(items, (a) => a.id)
    const deliveries = arrayLiteral(items, (a) => a.deliveries)
    const fused = this.fuse(items)
    if (fused === undefined) {
      await this.db.query(
        { name: `${this.sql.prefix}ack`, text: this.sql.ack, values: [ids, deliveries] },
        'idempotent',
      )
      this.deleted(items.length)
      return []
    }
    const { consumer, reservation } = fused
    let rows: FetchedRow[]
    try {
      const res = await this.db.query<FetchedRow>(
        {
          name: `${this.sql.prefix}ack_fetch`,
          text: this.sql.ackFetch,
          values: [ids, deliveries, consumer.settings.queue, reservation.limit, consumer.settings.leaseMs],
        },
        // Replaying it is safe: the deletes match nothing the second time, and rows leased by a
        // lost first run come back when their lease runs out.
        'idempotent',
      )
      rows = res.rows
    } catch (err) {
      reservation.landed(undefined)
      throw err
    }
    reservation.landed(rows)
    this.deleted(items.length)
    return []
  }

  /** Picks the consumer (owning most of these acks) that wants rows fetched along with them. */
  private fuse(
    items: PendingAck[],
  ):
    | { consumer: PgConsumer; reservation: NonNullable<ReturnType<PgConsumer['reserveWithAcks']>> }
    | undefined {
    const owned = new Map<PgConsumer, number>()
    for (const a of items) {
      if (a.owner instanceof PgConsumer) owned.set(a.owner, (owned.get(a.owner) ?? 0) + 1)
    }
    for (const [consumer, freed] of [...owned].sort((x, y) => y[1] - x[1])) {
      const reservation = consumer.reserveWithAcks(freed)
      if (reservation !== undefined) return { consumer, reservation }
    }
    return undefined
  }

  // ---- internals ----

  private channel(queue: string): string {
    let channel = this.channels.get(queue)
    if (channel === undefined) {
      channel = queueChannel(this.db.schema, queue)
      if (this.channels.size > 10_000) this.channels.clear()
      this.channels.set(queue, channel)
    }
    return channel
  }

  private insertQuery(
    queue: string,
    messages: readonly OutgoingMessage[],
  ): { name?: string; text: string; values: unknown[] } | undefined {
    checkQueue(queue)
    if (!Array.isArray(messages)) throw new TypeError('publish needs an array of messages')
    if (messages.length === 0) return undefined
    const priorities: number[] = []
    const delays: number[] = []
    const bodies: Buffer[] = []
    for (const [i, m] of messages.entries()) {
      const checked = checkOutgoing(m, i, this.capabilities, ADAPTER)
      priorities.push(checked.priority)
      delays.push(checked.delayMs)
      bodies.push(Buffer.from(checked.body.buffer, checked.body.byteOffset, checked.body.byteLength))
    }
    const channel = this.channel(queue)
    if (messages.length === 1) {
      return {
        name: `${this.sql.prefix}insert_one`,
        text: this.sql.insertOne,
        values: [queue, priorities[0], delays[0], bodies[0], channel],
      }
    }
    return { text: this.sql.insertMany, values: [queue, priorities, delays, bodies, channel] }
  }

  private deleted(n: number): void {
    const threshold = this.options.vacuumAfterDeletes ?? 20_000
    if (threshold === 0 || n === 0) return
    this.deletesSinceVacuum += n
    if (this.deletesSinceVacuum < threshold || this.vacuuming || this.db.isClosed) return
    this.deletesSinceVacuum = 0
    this.vacuuming = true
    this.vacuum()
      .catch((err: unknown) => this.logger.warn(`VACUUM of the jobs table failed: ${(err as Error).message}`))
      .finally(() => {
        this.vacuuming = false
      })
  }

  /**
   * Deleted rows leave dead tuples that only VACUUM makes reusable. Autovacuum does this where
   * it runs; we also do it ourselves so the table stays small without it. One process at a
   * time (a try-lock), never blocking the hot path.
   */
  private async vacuum(): Promise<void> {
    const key = `errand.vacuum.${this.db.schema}`
    await this.db.withClient(async (client) => {
      const got = await client.query({
        text: 'SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok',
        values: [key],
      })
      if (got.rows[0]?.ok !== true) return
      try {
        await client.query({ text: this.sql.vacuum })
      } finally {
        await client.query({ text: 'SELECT pg_advisory_unlock(hashtextextended($1, 0))', values: [key] })
      }
    })
  }
}

/**
 * A Postgres array literal of plain numbers (ids are decimal strings): cheaper than letting `pg`
 * escape each element, and safe because nothing but digits goes in.
 */
function arrayLiteral<T>(items: readonly T[], pick: (item: T) => string | number): string {
  let out = '{'
  for (let i = 0; i < items.length; i++) out += (i === 0 ? '' : ',') + pick(items[i]!)
  return `${out}}`
}

/** An ack waiting for its batch. */
interface PendingAck {
  readonly id: string
  readonly deliveries: number
  readonly owner: DeliveryOwner
}

function checkQueue(queue: string): void {
  if (typeof queue !== 'string' || queue.length === 0 || queue.length > MAX_QUEUE_NAME) {
    throw new TypeError(`queue must be a non-empty string of at most ${MAX_QUEUE_NAME} characters`)
  }
}

/** Dead-letter ids are decimal; anything else matches nothing. Undefined means "all". */
function idArray(ids: readonly string[] | undefined): string[] | null {
  if (ids === undefined) return null
  if (!Array.isArray(ids)) throw new TypeError('ids must be an array of strings')
  return ids.filter((id) => typeof id === 'string' && /^[0-9]{1,18}$/.test(id))
}
