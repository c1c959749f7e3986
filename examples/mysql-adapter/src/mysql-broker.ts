import {
  type Broker,
  type BrokerCapabilities,
  brokerCapabilities,
  type CheckedMessage,
  ClosedError,
  ConnectionError,
  type ConsumeOptions,
  type Consumer,
  checkOutgoing,
  consoleLogger,
  type DeadLetter,
  type DeadLetterInfo,
  type DeadLetterReason,
  type DeliveryHandler,
  InvalidOptionError,
  type ListDeadLettersOptions,
  type Logger,
  maskCredentials,
  type OutgoingMessage,
  type QueueStats,
} from '@errand/core'
import {
  createPool,
  type Pool,
  type PoolConnection,
  type ResultSetHeader,
  type RowDataPacket,
} from 'mysql2/promise'
import { type ConsumerHost, MySqlConsumer } from './mysql-consumer.js'
import { type DeliveryOwner, MySqlDelivery } from './mysql-delivery.js'
import {
  connectionUri,
  type MySqlBrokerOptions,
  type ResolvedMySqlOptions,
  resolveOptions,
} from './options.js'
import { migrate } from './schema.js'
import { WakeBus } from './wake-bus.js'

const DAY = 86_400_000
/** Rows per INSERT: well under MariaDB's default 16 MiB max_allowed_packet at the largest body. */
const INSERT_BYTES = 8 * 1024 * 1024

/**
 * An Errand broker on MySQL 8 / MariaDB 10.6+ (InnoDB): one row per message, taken with
 * `SELECT … FOR UPDATE SKIP LOCKED` under a lease, deleted at ack. A worked example of a
 * third-party adapter: it is built only on `@errand/core`'s public API and proves itself with
 * `@errand/conformance`.
 *
 * @example
 * const broker = new MySqlBroker({ url: 'mysql://root@127.0.0.1:3306/test' })
 */
export class MySqlBroker implements Broker {
  readonly name = 'mysql'
  readonly capabilities: BrokerCapabilities = brokerCapabilities({
    maxDelayMs: 365 * DAY,
    maxPriority: 255,
    leases: true,
    maxMessageBytes: 4 * 1024 * 1024,
    maxBatchSize: 1000,
  })
  readonly logger: Logger
  readonly pollMs: number
  readonly #options: ResolvedMySqlOptions
  readonly #jobs: string
  readonly #dead: string
  readonly #wakeKey: string
  readonly #consumers = new Set<MySqlConsumer>()
  readonly #host: ConsumerHost
  #pool: Pool | undefined
  #connecting: Promise<void> | undefined
  #closed: Promise<void> | undefined

  constructor(options: MySqlBrokerOptions & { logger?: Logger }) {
    const { logger, ...rest } = options
    this.#options = resolveOptions(rest)
    this.logger = logger ?? consoleLogger
    this.pollMs = this.#options.pollMs
    this.#jobs = `\`${this.#options.table}_jobs\``
    this.#dead = `\`${this.#options.table}_dead\``
    const u = new URL(this.#options.url)
    this.#wakeKey = `${u.host}${u.pathname}/${this.#options.table}`
    this.#host = this.#makeHost()
  }

  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError('mysql broker is closed'))
    this.#connecting ??= this.#open().catch((err) => {
      this.#connecting = undefined
      throw err
    })
    return this.#connecting
  }

  async #open(): Promise<void> {
    const pool = createPool({
      uri: connectionUri(this.#options.url),
      connectionLimit: this.#options.poolSize,
      connectTimeout: 5_000,
      supportBigNumbers: true,
      bigNumberStrings: true,
    })
    // READ COMMITTED: a fetch's locks cover only the rows it returns, so competing consumers
    // skip exactly those and take the next ones.
    pool.pool.on('connection', (c) => {
      c.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED')
    })
    try {
      await migrate(pool, this.#options.table)
    } catch (err) {
      await pool.end().catch(() => {})
      const where = new URL(this.#options.url).host
      throw new ConnectionError(
        `mysql: cannot open ${where}: ${maskCredentials(String((err as Error).message))}`,
        {
          adapter: 'mysql',
          cause: err,
        },
      )
    }
    this.#pool = pool
  }

  close(): Promise<void> {
    this.#closed ??= this.#shutdown()
    return this.#closed
  }

  async #shutdown(): Promise<void> {
    await this.#connecting?.catch(() => {})
    const consumers = [...this.#consumers]
    this.#consumers.clear()
    await Promise.all(consumers.map((c) => c.cancel()))
    // Give back what was taken and not settled, at once: another consumer takes it with
    // attempt + 1 instead of waiting for the lease.
    const held = consumers.flatMap((c) => [...c.held].filter((d) => d.open))
    if (held.length > 0 && this.#pool) {
      await Promise.all(held.map((d) => this.#giveBack(d))).catch((err) =>
        this.logger.warn('mysql: could not give back held deliveries; they return after their lease', {
          error: String(err),
        }),
      )
      WakeBus.wake(this.#wakeKey, '*')
    }
    await this.#pool?.end()
  }

  async #giveBack(d: MySqlDelivery): Promise<void> {
    await this.#pool?.query(
      `UPDATE ${this.#jobs} SET held = 0, visible_at = ? WHERE id = ? AND deliveries = ? AND held = 1`,
      [Date.now(), d.messageId, d.attempt],
    )
  }

  #db(): Pool {
    if (this.#closed) throw new ClosedError('mysql broker is closed')
    if (!this.#pool) throw new ClosedError('mysql broker is not connected: call connect() first')
    return this.#pool
  }

  async publish(queue: string, messages: readonly OutgoingMessage[]): Promise<void> {
    checkQueue(queue)
    const db = this.#db()
    if (!Array.isArray(messages)) throw new TypeError('publish: messages must be an array')
    const checked = messages.map((m, i) => checkOutgoing(m, i, this.capabilities, 'mysql'))
    if (checked.length === 0) return
    const now = Date.now()
    const rows = (batch: CheckedMessage[]) =>
      batch.map((m) => [queue, m.priority, now + m.delayMs, Buffer.from(m.body)])
    const batches: CheckedMessage[][] = [[]]
    let bytes = 0
    for (const m of checked) {
      if (bytes + m.body.byteLength > INSERT_BYTES && batches.at(-1)!.length > 0) {
        batches.push([])
        bytes = 0
      }
      batches.at(-1)!.push(m)
      bytes += m.body.byteLength
    }
    const sql = `INSERT INTO ${this.#jobs} (queue, priority, visible_at, body) VALUES ?`
    if (batches.length === 1) {
      await db.query(sql, [rows(batches[0]!)])
    } else {
      // One transaction: a publish is all or nothing, also when it spans several statements.
      await this.#transaction(async (c) => {
        for (const batch of batches) await c.query(sql, [rows(batch)])
      })
    }
    WakeBus.wake(this.#wakeKey, queue)
  }

  async consume(queue: string, onDelivery: DeliveryHandler, options: ConsumeOptions): Promise<Consumer> {
    checkQueue(queue)
    this.#db()
    if (typeof onDelivery !== 'function') throw new TypeError('consume: onDelivery must be a function')
    const prefetch = options?.prefetch
    if (!Number.isInteger(prefetch) || prefetch < 1) {
      throw new InvalidOptionError('prefetch', `must be an integer >= 1, got ${String(prefetch)}`)
    }
    const leaseMs = options.leaseMs ?? this.#options.leaseMs
    if (!Number.isInteger(leaseMs) || leaseMs < 1) {
      throw new InvalidOptionError('leaseMs', `must be an integer >= 1, got ${String(leaseMs)}`)
    }
    const consumer = new MySqlConsumer(this.#host, queue, onDelivery, prefetch, leaseMs)
    this.#consumers.add(consumer)
    consumer.start()
    // Kept after cancel too: its deliveries stay valid, and close gives back the unsettled ones.
    return { cancel: () => consumer.cancel() }
  }

  /** The statements a consumer and its deliveries run, all fenced on the take count. */
  #makeHost(): ConsumerHost {
    return {
      logger: this.logger,
      pollMs: this.pollMs,
      take: (queue: string, n: number, leaseMs: number, owner: DeliveryOwner) =>
        this.#take(queue, n, leaseMs, owner),
      nextVisibleAt: async (queue: string) => {
        const [rows] = await this.#db().query<RowDataPacket[]>(
          `SELECT MIN(visible_at) AS next FROM ${this.#jobs} WHERE queue = ? AND visible_at > ?`,
          [queue, Date.now()],
        )
        const next = rows[0]?.next
        return next === null || next === undefined ? undefined : Number(next)
      },
      onWake: (queue: string, wake: () => void) => WakeBus.on(this.#wakeKey, queue, wake),
      ack: async (id: string, take: number) => {
        await this.#db().query(`DELETE FROM ${this.#jobs} WHERE id = ? AND deliveries = ? AND held = 1`, [
          id,
          take,
        ])
      },
      nack: async (id: string, take: number, delayMs: number) => {
        const [res] = await this.#db().query<ResultSetHeader>(
          `UPDATE ${this.#jobs} SET held = 0, visible_at = ? WHERE id = ? AND deliveries = ? AND held = 1`,
          [Date.now() + delayMs, id, take],
        )
        if (res.affectedRows > 0) WakeBus.wake(this.#wakeKey, '*')
      },
      deadLetter: (id: string, take: number, info: DeadLetterInfo) =>
        this.#transaction(async (c) => {
          const [moved] = await c.query<ResultSetHeader>(
            `INSERT INTO ${this.#dead} (queue, reason, error, dead_at, body)
           SELECT queue, ?, ?, ?, body FROM ${this.#jobs} WHERE id = ? AND deliveries = ? AND held = 1`,
            [info.reason, info.error === undefined ? null : JSON.stringify(info.error), Date.now(), id, take],
          )
          if (moved.affectedRows > 0) await c.query(`DELETE FROM ${this.#jobs} WHERE id = ?`, [id])
        }),
      extend: async (id: string, take: number, ms: number) => {
        if (!Number.isFinite(ms) || ms <= 0)
          throw new TypeError(`extend: ms must be a positive number, got ${ms}`)
        await this.#db().query(
          `UPDATE ${this.#jobs} SET visible_at = ? WHERE id = ? AND deliveries = ? AND held = 1`,
          [Date.now() + ms, id, take],
        )
      },
    }
  }

  async #take(queue: string, n: number, leaseMs: number, owner: DeliveryOwner): Promise<MySqlDelivery[]> {
    const now = Date.now()
    return this.#transaction(async (c) => {
      const [ids] = await c.query<RowDataPacket[]>(
        `SELECT id FROM ${this.#jobs} FORCE INDEX (fetch_order)
         WHERE queue = ? AND visible_at <= ? ORDER BY priority DESC, id LIMIT ? FOR UPDATE SKIP LOCKED`,
        [queue, now, n],
      )
      if (ids.length === 0) return []
      const list = ids.map((r) => String(r.id))
      await c.query(
        `UPDATE ${this.#jobs} SET held = 1, visible_at = ?, deliveries = deliveries + 1 WHERE id IN (?)`,
        [now + leaseMs, list],
      )
      const [rows] = await c.query<RowDataPacket[]>(
        `SELECT id, deliveries, body FROM ${this.#jobs} WHERE id IN (?) ORDER BY priority DESC, id`,
        [list],
      )
      return rows.map(
        (r) => new MySqlDelivery(owner, String(r.id), Number(r.deliveries), new Uint8Array(r.body as Buffer)),
      )
    })
  }

  async #transaction<T>(run: (c: PoolConnection) => Promise<T>): Promise<T> {
    const c = await this.#db().getConnection()
    try {
      await c.beginTransaction()
      const out = await run(c)
      await c.commit()
      return out
    } catch (err) {
      await c.rollback().catch(() => {})
      throw err
    } finally {
      c.release()
    }
  }

  async stats(queue: string): Promise<QueueStats> {
    checkQueue(queue)
    const now = Date.now()
    const [[counts], [dead]] = await Promise.all([
      this.#db().query<RowDataPacket[]>(
        `SELECT COALESCE(SUM(held = 0 AND visible_at <= ?), 0) AS n_ready, COALESCE(SUM(held = 0 AND visible_at > ?), 0) AS n_delayed,
                COALESCE(SUM(held = 1), 0) AS n_in_flight FROM ${this.#jobs} WHERE queue = ?`,
        [now, now, queue],
      ),
      this.#db().query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${this.#dead} WHERE queue = ?`, [queue]),
    ])
    const c: RowDataPacket = counts[0] ?? ({} as RowDataPacket)
    return {
      ready: Number(c.n_ready ?? 0),
      delayed: Number(c.n_delayed ?? 0),
      inFlight: Number(c.n_in_flight ?? 0),
      dead: Number(dead[0]?.n ?? 0),
    }
  }

  async purge(queue: string): Promise<number> {
    checkQueue(queue)
    const [res] = await this.#db().query<ResultSetHeader>(
      `DELETE FROM ${this.#jobs} WHERE queue = ? AND held = 0`,
      [queue],
    )
    return res.affectedRows
  }

  async listDeadLetters(queue: string, options: ListDeadLettersOptions = {}): Promise<DeadLetter[]> {
    checkQueue(queue)
    const limit = options.limit ?? 100
    if (!Number.isInteger(limit) || limit < 0)
      throw new InvalidOptionError('limit', `must be an integer >= 0, got ${limit}`)
    const [rows] = await this.#db().query<RowDataPacket[]>(
      `SELECT id, reason, error, dead_at, body FROM ${this.#dead} WHERE queue = ? ORDER BY id LIMIT ?`,
      [queue, limit],
    )
    return rows.map((r) => ({
      id: String(r.id),
      queue,
      reason: r.reason as DeadLetterReason,
      error: r.error === null ? undefined : JSON.parse(String(r.error)),
      body: new Uint8Array(r.body as Buffer),
      deadAt: Number(r.dead_at),
    }))
  }

  async requeueDeadLetters(queue: string, ids?: readonly string[]): Promise<number> {
    checkQueue(queue)
    const filter = idFilter(ids)
    if (filter === null) return 0
    const moved = await this.#transaction(async (c) => {
      const [rows] = await c.query<RowDataPacket[]>(
        `SELECT id FROM ${this.#dead} WHERE queue = ?${filter.sql} FOR UPDATE`,
        [queue, ...filter.params],
      )
      if (rows.length === 0) return 0
      const list = rows.map((r) => String(r.id))
      await c.query(
        `INSERT INTO ${this.#jobs} (queue, priority, visible_at, body) SELECT queue, 0, ?, body FROM ${this.#dead} WHERE id IN (?) ORDER BY id`,
        [Date.now(), list],
      )
      await c.query(`DELETE FROM ${this.#dead} WHERE id IN (?)`, [list])
      return list.length
    })
    if (moved > 0) WakeBus.wake(this.#wakeKey, queue)
    return moved
  }

  async purgeDeadLetters(queue: string, ids?: readonly string[]): Promise<number> {
    checkQueue(queue)
    const filter = idFilter(ids)
    if (filter === null) return 0
    const [res] = await this.#db().query<ResultSetHeader>(
      `DELETE FROM ${this.#dead} WHERE queue = ?${filter.sql}`,
      [queue, ...filter.params],
    )
    return res.affectedRows
  }
}

/** A queue name this table can hold: 1–191 characters (the index's limit), no NUL. */
function checkQueue(queue: string): void {
  if (typeof queue !== 'string' || queue.length === 0 || queue.length > 191 || queue.includes('\u0000')) {
    throw new InvalidOptionError(
      'queue',
      `must be 1-191 characters without NUL, got ${JSON.stringify(String(queue)).slice(0, 60)}`,
    )
  }
}

/** `AND id IN (…)` for the given dead-letter ids; null when ids is given but names none we could hold. */
function idFilter(ids: readonly string[] | undefined): { sql: string; params: unknown[] } | null {
  if (ids === undefined) return { sql: '', params: [] }
  const valid = ids.filter((id) => typeof id === 'string' && /^\d{1,20}$/.test(id))
  if (valid.length === 0) return null
  return { sql: ' AND id IN (?)', params: [valid] }
}
