import { Batcher, type BatchOutcome, batchOk, type CheckedMessage, type DeadLetterInfo } from '@errand/core'
import type { BrokerSql } from './broker-sql.js'
import type { Db, RetryLimit, RetryMode } from './connection.js'
import type { PgConsumer } from './consumer.js'
import type { JobsMaintenance } from './maintenance.js'
import type { PgQueryable } from './pg-types.js'
import { arrayLiteral } from './validate.js'

/** A row as the fetch statement returns it. */
export interface FetchedRow {
  readonly id: string
  readonly deliveries: number
  readonly priority: number
  readonly body: Uint8Array
}

/** An ack waiting for its batch. */
interface PendingAck {
  readonly id: string
  readonly deliveries: number
  readonly owner: PgConsumer
}

type Reservation = NonNullable<ReturnType<PgConsumer['reserveWithAcks']>>

/**
 * The statements the broker and its consumers run on the jobs table: publish, fetch, and the
 * settles: acks in batches (fused with the next fetch of the consumer they free slots for),
 * nack, dead-letter, extend, release. Every settle matches `(id, deliveries)`, the lease token,
 * so a settle of an expired lease leaves the new holder's copy alone, and a replay after a lost
 * reply changes nothing: all are retried through a server restart.
 */
export class JobStore {
  private readonly db: Db
  private readonly sql: BrokerSql
  private readonly maintenance: JobsMaintenance
  private readonly channel: (queue: string) => string
  private readonly maxStatementBytes: number | undefined
  private readonly acks: Batcher<PendingAck, undefined>

  constructor(
    db: Db,
    sql: BrokerSql,
    maintenance: JobsMaintenance,
    channel: (queue: string) => string,
    maxStatementBytes: number | undefined,
  ) {
    this.db = db
    this.sql = sql
    this.maintenance = maintenance
    this.channel = channel
    this.maxStatementBytes = maxStatementBytes
    // Two statements on their way at once: one commits while the next batch gathers.
    this.acks = new Batcher({ flush: (items) => this.flushAcks(items), maxInFlight: 2 })
  }

  /** Insert checked messages (one statement, or one transaction of several for a huge batch). */
  async publish(queue: string, messages: readonly CheckedMessage[]): Promise<void> {
    const statements = this.insertStatements(queue, messages)
    if (statements.length === 1) {
      await this.db.query(statements[0]!, 'connect')
      return
    }
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

  /** Insert checked messages with the caller's client (inside their transaction). */
  async publishWith(tx: PgQueryable, queue: string, messages: readonly CheckedMessage[]): Promise<void> {
    // No statement names: prepared statements on the caller's connection are the caller's.
    for (const statement of this.insertStatements(queue, messages)) {
      await tx.query({ text: statement.text, values: statement.values })
    }
  }

  /** Lease up to `limit` ready rows of `queue` for `leaseMs`. */
  async fetch(queue: string, limit: number, leaseMs: number, retry: RetryLimit): Promise<FetchedRow[]> {
    const res = await this.db.query<FetchedRow>(
      { name: `${this.sql.prefix}fetch`, text: this.sql.fetch, values: [queue, limit, leaseMs] },
      'connect',
      retry,
    )
    return res.rows
  }

  /** Ms until the next delayed row is due or a lease runs out; undefined when none. */
  async nextDue(queue: string): Promise<number | undefined> {
    const res = await this.db.query<{ wait_ms: number | null }>(
      { name: `${this.sql.prefix}next_due`, text: this.sql.nextDue, values: [queue] },
      'idempotent',
    )
    const wait = res.rows[0]?.wait_ms
    return wait === null || wait === undefined ? undefined : wait + 1
  }

  ack(id: string, deliveries: number, owner: PgConsumer): Promise<undefined> {
    return this.acks.add({ id, deliveries, owner })
  }

  /** Resolves once no ack is pending or on its way. */
  drained(): Promise<void> {
    return this.acks.drained()
  }

  async nack(
    queue: string,
    id: string,
    deliveries: number,
    delayMs: number,
    limit?: RetryLimit,
  ): Promise<void> {
    await this.db.query(
      {
        name: `${this.sql.prefix}nack`,
        text: this.sql.nack,
        values: [id, deliveries, delayMs, this.channel(queue)],
      },
      'idempotent',
      limit,
    )
  }

  async deadLetter(id: string, deliveries: number, info: DeadLetterInfo, limit?: RetryLimit): Promise<void> {
    const error = info.error === undefined ? null : JSON.stringify(info.error)
    const res = await this.db.query(
      {
        name: `${this.sql.prefix}dead`,
        text: this.sql.deadLetter,
        values: [id, deliveries, info.reason, error],
      },
      'idempotent',
      limit,
    )
    this.maintenance.deleted(res.rowCount ?? 0)
  }

  /** False when no row matched: the lease was taken over (or the row settled or purged). */
  async extend(id: string, deliveries: number, ms: number, limit?: RetryLimit): Promise<boolean> {
    const res = await this.db.query(
      { name: `${this.sql.prefix}extend`, text: this.sql.extend, values: [id, deliveries, ms] },
      'idempotent',
      limit,
    )
    return (res.rowCount ?? 0) > 0
  }

  /** Ends the leases of these rows now and wakes the consumers of their queues. */
  async release(rows: readonly Pick<FetchedRow, 'id' | 'deliveries'>[]): Promise<void> {
    await this.giveBackWith(this.sql.release, rows, 'idempotent')
  }

  /**
   * Like {@link release}, for rows that never reached core: their delivery is not counted
   * (see `BrokerSql.giveBack`). Not replayed: if the reply is lost, the lease brings them back
   * counted, which is only conservative.
   */
  async giveBack(rows: readonly Pick<FetchedRow, 'id' | 'deliveries'>[]): Promise<void> {
    await this.giveBackWith(this.sql.giveBack, rows, 'connect')
  }

  private async giveBackWith(
    text: string,
    rows: readonly Pick<FetchedRow, 'id' | 'deliveries'>[],
    mode: RetryMode,
  ): Promise<void> {
    const res = await this.db.query<{ queue: string }>(
      { text, values: [arrayLiteral(rows, (r) => r.id), arrayLiteral(rows, (r) => r.deliveries)] },
      mode,
    )
    const queues = res.rows.map((r) => r.queue)
    if (queues.length === 0) return
    await this.db
      .query(
        { text: "SELECT pg_notify(c, '') FROM unnest($1::text[]) AS c", values: [queues.map(this.channel)] },
        'idempotent',
      )
      .catch(() => undefined)
  }

  /**
   * One statement for every ack of the batch. When a consumer with more work waiting owns some
   * of these acks, the same statement also fetches its next rows: one round trip and one commit
   * per cycle instead of two.
   */
  private async flushAcks(items: readonly PendingAck[]): Promise<BatchOutcome<undefined>[]> {
    const ids = arrayLiteral(items, (a) => a.id)
    const deliveries = arrayLiteral(items, (a) => a.deliveries)
    // A batch retries as long as its least patient owner allows: an ack given up early only
    // means a redelivery after the lease, while waiting would hold up a stopping worker.
    const limit = (): number => Math.min(...items.map((a) => a.owner.settleBudget()))
    const fused = fuse(items)
    if (fused === undefined) {
      await this.db.query(
        { name: `${this.sql.prefix}ack`, text: this.sql.ack, values: [ids, deliveries] },
        'idempotent',
        limit,
      )
      this.maintenance.deleted(items.length)
      return batchOk(items.map(() => undefined))
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
        limit,
      )
      rows = res.rows
    } catch (err) {
      reservation.landed(undefined)
      throw err
    }
    reservation.landed(rows)
    this.maintenance.deleted(items.length)
    return batchOk(items.map(() => undefined))
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
    return this.sql.insert(queue, priorities, delays, bodies, this.channel(queue), this.maxStatementBytes)
  }
}

/** Picks the consumer (owning most of these acks) that wants rows fetched along with them. */
function fuse(items: readonly PendingAck[]): { consumer: PgConsumer; reservation: Reservation } | undefined {
  const owned = new Map<PgConsumer, number>()
  for (const a of items) owned.set(a.owner, (owned.get(a.owner) ?? 0) + 1)
  for (const [consumer, freed] of [...owned].sort((x, y) => y[1] - x[1])) {
    const reservation = consumer.reserveWithAcks(freed)
    if (reservation !== undefined) return { consumer, reservation }
  }
  return undefined
}
