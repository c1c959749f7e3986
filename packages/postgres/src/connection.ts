import type { Logger, ReconnectBackoff } from '@errand/core'
import { ClosedError, ConnectionError, maskCredentials, reconnectDelay } from '@errand/core'
import pg from 'pg'
import { migrateSchema } from './migrations.js'
import { ADAPTER, type ResolvedConnection } from './options.js'
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
 * is wrong": SQLSTATE class 08, admin/crash shutdown, cannot-connect-now, too many connections,
 * socket errors, and pg's own "Connection terminated" errors.
 */
export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string') {
    if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03') return true
    // too_many_connections: raised while connecting (nothing was sent), and transient.
    if (code === '53300') return true
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
 * Waits between attempts to reach the server again (core's reconnect rule, shorter than its
 * default): these retries hold up a caller (a settle, a publish, a LISTEN that wakes consumers),
 * so once the server is back we want to notice within about a second.
 */
export const PG_RECONNECT: ReconnectBackoff = { initialMs: 50, maxMs: 1000 }

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
 * A further bound on a retry loop, read at each retry: the most ms the call may keep retrying,
 * counted from its start (e.g. a canceled consumer's settles get the shutdown grace each, its
 * fetches nothing).
 */
export type RetryLimit = () => number

/** Drops a `pg` client's socket at once (a stuck query or a half-open TCP connection included). */
function destroySocket(client: unknown): void {
  const stream = (client as { connection?: { stream?: { destroy?: () => void } } }).connection?.stream
  stream?.destroy?.()
}

/** Resolves after `ms` with false, or with true as soon as `work` settles. */
async function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms)
  })
  const done = work.then(
    () => true,
    () => true,
  )
  try {
    return await Promise.race([done, expired])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * A pool plus the rules around it: who owns it, how long to retry while the server is away, and
 * how errors are turned into Errand errors. Shared by the broker and the result backend.
 *
 * Patience depends on history. Until a connection has once been opened, a refused or hanging
 * connect is most likely a wrong URL or a server that is not there: the first connect gives up
 * after `connectTimeoutMs` with ERR_CONNECTION naming host:port. After that, a failure is an
 * outage (a restart, a blip): retry-safe work waits up to `reconnectTimeoutMs` for it to end.
 * Once `close()` began, every retry stops at the shutdown grace (`closeTimeoutMs`).
 */
export class Db {
  readonly pool: PgPool
  readonly schema: string
  readonly logger: Logger
  private readonly owned: boolean
  private readonly config: ResolvedConnection
  private closed = false
  /** A connection was opened once: failures from now on are outages to wait out. */
  private everConnected = false
  /** Retries stop at this time once close() began. */
  private closeDeadline = Number.POSITIVE_INFINITY
  /** Clients we hold (pooled ones checked out, dedicated ones): dropped if close() runs out of time. */
  private readonly held = new Set<PgPoolClient>()

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
        connectionTimeoutMillis: config.connectTimeoutMs,
        keepAlive: true,
        application_name: `errand:${config.schema}`,
      })
      // An idle client whose server went away emits here; without a listener node would crash.
      own.on('error', (err) => this.logger.warn(`idle connection lost: ${err.message}`))
      this.pool = own
      this.owned = true
    }
  }

  get isClosed(): boolean {
    return this.closed
  }

  /** The shutdown grace (`closeTimeoutMs`). */
  get closeTimeoutMs(): number {
    return this.config.closeTimeoutMs
  }

  /**
   * A dedicated client for LISTEN, retrying while the server is unreachable (see the class
   * comment for how long); ConnectionError after that.
   */
  async connectDedicated(): Promise<PgPoolClient> {
    const started = Date.now()
    const deadline = started + this.config.reconnectTimeoutMs
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.dedicatedClient()
      } catch (err) {
        const delay = reconnectDelay(attempt, PG_RECONNECT)
        if (!isConnectionError(err) || this.closed || Date.now() + delay > this.retryUntil(started, deadline))
          throw this.wrap(err, true)
        await sleep(delay)
      }
    }
  }

  /** A new dedicated client for LISTEN: our own connection, or one held from the caller's pool. */
  async dedicatedClient(): Promise<PgPoolClient> {
    if (!this.owned) {
      const pooled = guard(await this.pool.connect())
      const release = pooled.release.bind(pooled)
      // pg-pool assigns a fresh release() at every checkout, so this one lives as long as our hold.
      pooled.release = (err?: Error | boolean) => {
        this.held.delete(pooled)
        release(err)
      }
      return this.hold(pooled)
    }
    const client = new pg.Client({
      connectionString: this.config.connectionString,
      keepAlive: true,
      connectionTimeoutMillis: this.config.connectTimeoutMs,
      application_name: `errand-listen:${this.config.schema}`,
    })
    const wrapped = client as unknown as PgPoolClient & { connect(): Promise<void>; end(): Promise<void> }
    // Before connecting, so a failing connect cannot surface as an unhandled 'error' either.
    guard(wrapped)
    await wrapped.connect()
    // Release = end, so callers treat both kinds alike.
    Object.defineProperty(wrapped, 'release', {
      value: () => {
        this.held.delete(wrapped)
        client.end().catch(() => undefined)
      },
    })
    return this.hold(wrapped)
  }

  /**
   * Acquires a connection, retrying while the server is unreachable until `deadline` (and the
   * bounds of the class comment, and `limit`).
   */
  async acquire(
    deadline = Date.now() + this.config.reconnectTimeoutMs,
    limit?: RetryLimit,
  ): Promise<PgPoolClient> {
    const started = Date.now()
    for (let attempt = 1; ; attempt++) {
      try {
        return this.hold(guard(await this.pool.connect()))
      } catch (err) {
        const delay = reconnectDelay(attempt, PG_RECONNECT)
        if (
          !isConnectionError(err) ||
          this.closed ||
          Date.now() + delay > this.retryUntil(started, deadline, limit)
        ) {
          throw this.wrap(err, true)
        }
        await sleep(delay)
      }
    }
  }

  /** Gives a client back to its pool (destroying it when `err` says it is broken). */
  release(client: PgPoolClient, err?: Error): void {
    this.held.delete(client)
    client.release(err)
  }

  /** Runs one statement on a pooled connection, with the retry rule given. */
  // biome-ignore lint/suspicious/noExplicitAny: rows are typed by the caller's cast
  async query<R = any>(
    query: PgQuery,
    mode: RetryMode = 'connect',
    limit?: RetryLimit,
  ): Promise<PgResult<R>> {
    const started = Date.now()
    const deadline = started + this.config.reconnectTimeoutMs
    for (let attempt = 1; ; attempt++) {
      const client = await this.acquire(deadline, limit)
      try {
        const res = (await client.query(query)) as PgResult<R>
        this.release(client)
        return res
      } catch (err) {
        const broken = isConnectionError(err)
        this.release(client, broken ? (err as Error) : undefined)
        if (!broken) throw err
        const delay = reconnectDelay(attempt, PG_RECONNECT)
        if (
          mode !== 'idempotent' ||
          this.closed ||
          Date.now() + delay > this.retryUntil(started, deadline, limit)
        )
          throw this.wrap(err)
        await sleep(delay)
      }
    }
  }

  /** Runs `fn` on one connection (a transaction, a session lock); destroys it on any error. */
  async withClient<T>(fn: (client: PgPoolClient) => Promise<T>): Promise<T> {
    const client = await this.acquire()
    try {
      const out = await fn(client)
      this.release(client)
      return out
    } catch (err) {
      this.release(client, err instanceof Error ? err : new Error(String(err)))
      throw isConnectionError(err) ? this.wrap(err) : err
    }
  }

  /** Applies pending migrations (see {@link migrateSchema}). */
  migrate(): Promise<number[]> {
    return this.withClient((client) => migrateSchema(client, this.schema))
  }

  /**
   * Turns a connection-class error (any error, with `always`) into a ConnectionError naming the
   * server by host:port, never its credentials.
   */
  wrap(err: unknown, always = false): Error {
    if (err instanceof ClosedError || err instanceof ConnectionError) return err
    if (!always && !isConnectionError(err)) return err instanceof Error ? err : new Error(String(err))
    const message = maskCredentials(err instanceof Error ? err.message : String(err))
    // `always` is the connect path; the other is a statement whose connection broke.
    const what = always ? 'cannot connect to' : 'lost the connection to'
    return new ConnectionError(`${what} PostgreSQL at ${this.endpoint}: ${message}`, {
      adapter: ADAPTER,
      cause: err,
    })
  }

  /**
   * Closes within the shutdown grace: `orderly` (settles on their way, giving back deliveries)
   * runs with every retry bounded by `closeTimeoutMs`; if the server still has not answered by
   * then, every connection is dropped. Then the LISTEN connection and the pool (if ours) close,
   * each bounded by `connectTimeoutMs`. A pool passed in is left open.
   */
  async shutdown(orderly: () => Promise<void>, listener: { close(): Promise<void> }): Promise<void> {
    const grace = this.config.closeTimeoutMs
    this.closeDeadline = Date.now() + grace
    const work = orderly().catch((err: unknown) =>
      this.logger.warn(`close: could not finish cleanly: ${(err as Error).message}`),
    )
    if (!(await within(work, grace))) {
      this.logger.warn(
        `close: no answer from ${this.endpoint} within closeTimeoutMs (${grace} ms); dropping the ` +
          'connections (unsettled deliveries come back when their lease runs out)',
      )
      this.dropConnections()
    }
    const bound = this.config.connectTimeoutMs
    if (!(await within(listener.close(), bound))) this.dropConnections()
    if (this.closed) return
    this.closed = true
    if (!this.owned) return
    if (!(await within(this.pool.end(), bound))) this.dropConnections()
  }

  /** host:port of the server, never credentials. */
  private get endpoint(): string {
    if (this.config.endpoint !== 'pg.Pool') return this.config.endpoint
    const o = (this.pool as { options?: { host?: unknown; port?: unknown } }).options
    return typeof o?.host === 'string' ? `${o.host}:${typeof o.port === 'number' ? o.port : 5432}` : 'pg.Pool'
  }

  /** When a retry loop that began at `started` must give up. */
  private retryUntil(started: number, deadline: number, limit?: RetryLimit): number {
    let until = Math.min(deadline, this.closeDeadline, started + (limit?.() ?? Number.POSITIVE_INFINITY))
    if (!this.everConnected) until = Math.min(until, started + this.config.connectTimeoutMs)
    return until
  }

  private hold(client: PgPoolClient): PgPoolClient {
    this.everConnected = true
    this.held.add(client)
    return client
  }

  /** Drops the sockets of every client we hold, and of the idle ones of a pool we own. */
  private dropConnections(): void {
    for (const client of this.held) destroySocket(client)
    this.held.clear()
    if (this.owned) {
      const idle = (this.pool as { _clients?: unknown })._clients
      if (Array.isArray(idle)) for (const client of idle) destroySocket(client)
    }
  }
}
