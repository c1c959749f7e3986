import { ClosedError, ConnectionError, maskCredentials } from '@errand/core'
import pg from 'pg'
import { migrateSchema } from './migrations.js'
import { ADAPTER, type PostgresLogger, type ResolvedConnection } from './options.js'
import type { PgPool, PgPoolClient, PgQuery, PgResult } from './pg-types.js'

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
])

/**
 * True for errors that mean "the connection or the server went away" rather than "the statement
 * is wrong": SQLSTATE class 08, admin/crash shutdown, cannot-connect-now, socket errors, and
 * pg's own "Connection terminated" errors.
 */
export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string') {
    if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03') return true
    if (CONNECTION_CODES.has(code)) return true
  }
  return /Connection terminated|not queryable|connection error|Client was closed|timeout exceeded when trying to connect/i.test(
    err.message,
  )
}

/** How a statement may be retried when the connection fails. */
export type RetryMode =
  /** Retry only when no connection could be had (nothing was sent). */
  | 'connect'
  /** The statement may run twice: retry on any connection error until the deadline. */
  | 'idempotent'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/**
 * `pg` emits 'error' on a checked-out client whose server goes away between two queries (a
 * FATAL can arrive in the same packet as the last reply), and pg-pool listens only while the
 * client is idle: without a listener of ours that would crash the process. The failure itself
 * reaches us through the next query, so the listener only has to exist.
 */
const guarded = new WeakSet<object>()
const ignore = (): void => {}
function guard(client: PgPoolClient): PgPoolClient {
  if (!guarded.has(client)) {
    guarded.add(client)
    client.on('error', ignore)
  }
  return client
}

/**
 * A pool plus the rules around it: who owns it, how long to retry while the server is away, and
 * how errors are turned into Errand errors. Shared by the broker and the result backend.
 */
export class Db {
  readonly pool: PgPool
  readonly schema: string
  readonly logger: PostgresLogger
  private readonly owned: boolean
  private readonly config: ResolvedConnection
  private closed = false

  constructor(config: ResolvedConnection) {
    this.config = config
    this.schema = config.schema
    this.logger = config.logger
    if (config.pool !== undefined) {
      this.pool = config.pool
      this.owned = false
    } else {
      const own = new pg.Pool({
        connectionString: config.connectionString,
        max: config.poolSize,
        idleTimeoutMillis: 10_000,
        keepAlive: true,
        application_name: `errand:${config.schema}`,
      })
      // An idle client whose server went away emits here; without a listener node would crash.
      own.on('error', (err) => this.logger.warn(`idle connection lost: ${err.message}`))
      this.pool = own
      this.owned = true
    }
  }

  /** The URL (password masked) or `pg.Pool`, for messages. */
  get display(): string {
    return this.config.display
  }

  get isClosed(): boolean {
    return this.closed
  }

  /**
   * A dedicated client for LISTEN, retrying until `reconnectTimeoutMs` while the server is
   * unreachable (it may be restarting); ConnectionError after that.
   */
  async connectDedicated(): Promise<PgPoolClient> {
    const deadline = Date.now() + this.config.reconnectTimeoutMs
    let delay = 50
    for (;;) {
      try {
        return await this.dedicatedClient()
      } catch (err) {
        if (!isConnectionError(err) || this.closed || Date.now() + delay > deadline)
          throw this.wrap(err, true)
        await sleep(delay)
        delay = Math.min(delay * 2, 1000)
      }
    }
  }

  /** A new dedicated client for LISTEN: our own connection, or one held from the caller's pool. */
  async dedicatedClient(): Promise<PgPoolClient> {
    if (!this.owned) return guard(await this.pool.connect())
    const client = new pg.Client({
      connectionString: this.config.connectionString,
      keepAlive: true,
      application_name: `errand-listen:${this.config.schema}`,
    })
    const wrapped = client as unknown as PgPoolClient & { connect(): Promise<void>; end(): Promise<void> }
    // Before connecting, so a failing connect cannot surface as an unhandled 'error' either.
    guard(wrapped)
    await wrapped.connect()
    // Release = end, so callers treat both kinds alike.
    Object.defineProperty(wrapped, 'release', {
      value: () => {
        client.end().catch(() => undefined)
      },
    })
    return wrapped
  }

  /** Throws ClosedError once {@link close} ran. */
  assertOpen(what: string): void {
    if (this.closed) throw new ClosedError(`${what} after close()`, { adapter: ADAPTER })
  }

  /**
   * Acquires a connection, retrying until `reconnectTimeoutMs` while the server is unreachable.
   */
  async acquire(deadline = Date.now() + this.config.reconnectTimeoutMs): Promise<PgPoolClient> {
    let delay = 50
    for (;;) {
      try {
        return guard(await this.pool.connect())
      } catch (err) {
        if (!isConnectionError(err) || this.closed || Date.now() + delay > deadline) {
          throw this.wrap(err, true)
        }
        await sleep(delay)
        delay = Math.min(delay * 2, 1000)
      }
    }
  }

  /** Runs one statement on a pooled connection, with the retry rule given. */
  // biome-ignore lint/suspicious/noExplicitAny: rows are typed by the caller's cast
  async query<R = any>(query: PgQuery, mode: RetryMode = 'connect'): Promise<PgResult<R>> {
    const deadline = Date.now() + this.config.reconnectTimeoutMs
    let delay = 50
    for (;;) {
      const client = await this.acquire(deadline)
      try {
        const res = (await client.query(query)) as PgResult<R>
        client.release()
        return res
      } catch (err) {
        const broken = isConnectionError(err)
        client.release(broken ? (err as Error) : undefined)
        if (!broken) throw err
        if (mode !== 'idempotent' || this.closed || Date.now() + delay > deadline) throw this.wrap(err)
        await sleep(delay)
        delay = Math.min(delay * 2, 1000)
      }
    }
  }

  /** Runs `fn` on one connection (a transaction, a session lock); destroys it on any error. */
  async withClient<T>(fn: (client: PgPoolClient) => Promise<T>): Promise<T> {
    const client = await this.acquire()
    try {
      const out = await fn(client)
      client.release()
      return out
    } catch (err) {
      client.release(err instanceof Error ? err : new Error(String(err)))
      throw isConnectionError(err) ? this.wrap(err) : err
    }
  }

  /** Applies pending migrations (see {@link migrateSchema}). */
  migrate(): Promise<number[]> {
    return this.withClient((client) => migrateSchema(client, this.schema))
  }

  /** Turns a connection-class error (any error, with `always`) into a ConnectionError naming the server (password masked). */
  wrap(err: unknown, always = false): Error {
    if (err instanceof ClosedError || err instanceof ConnectionError) return err
    if (!always && !isConnectionError(err)) return err instanceof Error ? err : new Error(String(err))
    const message = err instanceof Error ? err.message : String(err)
    return new ConnectionError(maskCredentials(`cannot reach ${this.display}: ${message}`), {
      adapter: ADAPTER,
      cause: err,
    })
  }

  /** Ends the pool if we created it; a pool passed in is left open. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.owned) await this.pool.end()
  }
}
