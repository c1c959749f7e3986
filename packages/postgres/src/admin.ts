import type { DeadLetter, DeadLetterReason, QueueStats, SerializedError } from '@errand/core'
import type { BrokerSql } from './broker-sql.js'
import type { Db } from './connection.js'
import type { JobsMaintenance } from './maintenance.js'
import { idArray } from './validate.js'

/** Stats, purge and dead letters of the broker's queues. */
export class QueueAdmin {
  private readonly db: Db
  private readonly sql: BrokerSql
  private readonly maintenance: JobsMaintenance
  private readonly channel: (queue: string) => string

  constructor(db: Db, sql: BrokerSql, maintenance: JobsMaintenance, channel: (queue: string) => string) {
    this.db = db
    this.sql = sql
    this.maintenance = maintenance
    this.channel = channel
  }

  async stats(queue: string): Promise<QueueStats> {
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
    const res = await this.db.query({ text: this.sql.purge, values: [queue] }, 'idempotent')
    this.maintenance.deleted(res.rowCount ?? 0)
    return res.rowCount ?? 0
  }

  async listDeadLetters(queue: string, limit: number): Promise<DeadLetter[]> {
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

  /** Moves dead letters back to the queue (one statement) and wakes its consumers. */
  async requeueDeadLetters(queue: string, ids?: readonly string[]): Promise<number> {
    const res = await this.db.query<{ n: number }>(
      { text: this.sql.requeueDead, values: [queue, idArray(ids), this.channel(queue)] },
      'connect',
    )
    return res.rows[0]?.n ?? 0
  }

  async purgeDeadLetters(queue: string, ids?: readonly string[]): Promise<number> {
    const res = await this.db.query({ text: this.sql.purgeDead, values: [queue, idArray(ids)] }, 'idempotent')
    return res.rowCount ?? 0
  }
}
