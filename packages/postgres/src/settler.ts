import { Batcher, type BatchOutcome, batchOk, type DeadLetterInfo } from '@errand/core'
import type { BrokerSql } from './broker-sql.js'
import type { Db, RetryLimit, RetryMode } from './connection.js'
import type { FetchedRow, PgConsumer } from './consumer.js'
import type { JobsMaintenance } from './maintenance.js'
import { arrayLiteral } from './validate.js'

/** An ack waiting for its batch. */
interface PendingAck {
  readonly id: string
  readonly deliveries: number
  readonly owner: PgConsumer
}

type Reservation = NonNullable<ReturnType<PgConsumer['reserveWithAcks']>>

/**
 * Settles deliveries: acks in batches (fused with the next fetch of the consumer they free
 * slots for), nack, dead-letter, extend, release. Every statement matches `(id, deliveries)`,
 * the lease token, so a settle of an expired lease leaves the new holder's copy alone, and a
 * replay after a lost reply changes nothing: all are retried through a server restart.
 */
export class Settler {
  private readonly db: Db
  private readonly sql: BrokerSql
  private readonly maintenance: JobsMaintenance
  private readonly channel: (queue: string) => string
  private readonly acks: Batcher<PendingAck, undefined>

  constructor(db: Db, sql: BrokerSql, maintenance: JobsMaintenance, channel: (queue: string) => string) {
    this.db = db
    this.sql = sql
    this.maintenance = maintenance
    this.channel = channel
    // Two statements on their way at once: one commits while the next batch gathers.
    this.acks = new Batcher({ flush: (items) => this.flushAcks(items), maxInFlight: 2 })
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
