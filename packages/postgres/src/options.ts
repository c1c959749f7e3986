import {
  consoleLogger,
  InvalidOptionError,
  type Logger,
  maskCredentials,
  maskingLogger,
  optionsFromQuery,
  parseOptions as parseOptionsWith,
  parseStoreUrl,
} from '@errand/core'
import { z } from 'zod'
import type { PgPool } from './pg-types.js'

/** Adapter name used in errors and logs. */
export const ADAPTER = 'postgres'

/**
 * Where the adapter reports what it has to say (a failed fetch that will be retried, a lost
 * LISTEN connection…): core's {@link Logger}, e.g. the one given to `createApp`. Only `warn` is
 * required; missing levels are dropped. Lines are credential-masked before they reach it.
 */
export type PostgresLogger = Pick<Logger, 'warn'> & Partial<Omit<Logger, 'warn'>>

/** Options shared by {@link PostgresBroker} and {@link PostgresResultBackend}. */
export interface PostgresConnectionOptions {
  /**
   * `postgres://user:pass@host:5432/db?sslmode=require&schema=errand` (or `postgresql://`). The
   * `schema` query parameter is ours; the rest goes to `pg` (sslmode honoured). One of `url` or
   * `pool` is required.
   */
  readonly url?: string
  /**
   * An existing `pg.Pool`. It stays yours: we never end it, and while connected we hold one of its
   * connections for LISTEN.
   */
  readonly pool?: PgPool
  /** Schema holding Errand's tables (default `errand`): lower-case letters, digits, `_`, at most 40. */
  readonly schema?: string
  /** Run migrations on `connect()` (default true). Else call `migrate()` yourself once per release. */
  readonly migrate?: boolean
  /** Size of the pool we create from `url` (default 10; the LISTEN connection is extra). */
  readonly poolSize?: number
  /**
   * How long a retry-safe operation (ack, nack, state reads…) keeps retrying while a server that
   * was reached once is unreachable, and how long a publish waits for a connection, in ms
   * (default 30000).
   */
  readonly reconnectTimeoutMs?: number
  /**
   * Bound on opening one connection, in ms (default 5000; `pg`'s `connectionTimeoutMillis` for
   * the pool made from `url` and for the LISTEN connection). It is also the whole patience of the
   * first connect: a server that was never reached fails `connect()` with `ERR_CONNECTION`
   * naming host:port after about this long, instead of retrying for `reconnectTimeoutMs` (kept
   * for connections that once worked). A pool you pass in keeps its own connection timeout.
   */
  readonly connectTimeoutMs?: number
  /**
   * Shutdown grace, in ms (default 5000): how long `close()` keeps retrying what is on its way
   * (acks, giving back unsettled deliveries, queued result writes) while the server does not
   * answer; the settles of a canceled consumer's deliveries get the same bound. After it the
   * connections are dropped. So `close()` returns within about `closeTimeoutMs +
   * connectTimeoutMs` even during an outage; what it could not settle comes back by its lease.
   */
  readonly closeTimeoutMs?: number
  /**
   * Where warnings go (default: core's `consoleLogger`). Credentials are masked either way. An
   * app built with `createApp` from a URL passes its own logger (core's `AdapterContext`).
   */
  readonly logger?: PostgresLogger
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,39}$/

const logger = z.custom<PostgresLogger>(
  (v) => typeof v === 'object' && v !== null && typeof (v as PostgresLogger).warn === 'function',
  { message: 'expected an object with a warn(message) method' },
)
const pool = z.custom<PgPool>(
  (v) => typeof v === 'object' && v !== null && typeof (v as PgPool).connect === 'function',
  { message: 'expected a pg.Pool' },
)

/** The zod shape of {@link PostgresConnectionOptions}; the broker and backend extend it. */
export const connectionOptionsShape = {
  url: z.string().optional(),
  pool: pool.optional(),
  schema: z
    .string()
    .regex(SCHEMA_NAME, 'must match /^[a-z_][a-z0-9_]{0,39}$/ (lower-case letters, digits and _)')
    .optional(),
  migrate: z.boolean().optional(),
  poolSize: z.number().int().min(1).max(1000).optional(),
  reconnectTimeoutMs: z.number().int().min(0).optional(),
  connectTimeoutMs: z.number().int().min(1).max(600_000).optional(),
  closeTimeoutMs: z.number().int().min(0).max(600_000).optional(),
  logger: logger.optional(),
}

/** Connection settings after validation. */
export interface ResolvedConnection {
  readonly connectionString: string | undefined
  readonly pool: PgPool | undefined
  readonly schema: string
  readonly migrate: boolean
  readonly poolSize: number
  readonly reconnectTimeoutMs: number
  readonly connectTimeoutMs: number
  readonly closeTimeoutMs: number
  readonly logger: Logger
  /** The URL with its password masked, for messages. */
  readonly display: string
  /** `host:port` of the server (no credentials), for connection errors; `pg.Pool` when unknown. */
  readonly endpoint: string
}

/**
 * Validates `input` against one of the schemas below: core's `parseOptions` (the first issue is
 * `ERR_INVALID_OPTION` naming the option, credentials masked), with this adapter's name.
 */
export function parseOptions<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  return parseOptionsWith(schema, input, ADAPTER)
}

const drop = (): void => {}

/**
 * The logger the adapter writes to: the caller's (missing levels dropped) or core's default,
 * behind core's credential masking. Never `console.*` directly.
 */
export function adapterLogger(given: PostgresLogger | undefined): Logger {
  const inner: Logger =
    given === undefined
      ? consoleLogger
      : {
          debug: given.debug?.bind(given) ?? drop,
          info: given.info?.bind(given) ?? drop,
          warn: given.warn.bind(given),
          error: given.error?.bind(given) ?? given.warn.bind(given),
        }
  const masked = maskingLogger(inner)
  // Lines name the adapter, as AMQP's do: one app logger may hear from several stores.
  const tag =
    (fn: Logger['warn']): Logger['warn'] =>
    (message, fields) =>
      fn(`[${ADAPTER}] ${message}`, fields)
  return {
    debug: tag(masked.debug),
    info: tag(masked.info),
    warn: tag(masked.warn),
    error: tag(masked.error),
  }
}

/** `host:port` of a URL (pg's defaults: localhost, 5432), never its credentials. */
function endpointOf(url: URL): string {
  const host = url.hostname === '' ? 'localhost' : url.hostname
  return `${host}:${url.port === '' ? '5432' : url.port}`
}

/** The options a URL's query may set (the rest of the URL is `pg`'s). */
const urlOptionsSchema = z.object({ schema: connectionOptionsShape.schema })

/**
 * Query parameters `pg` reads from a connection string (pg-connection-string copies every
 * parameter into its config; these are the ones `pg` then uses). They stay in the URL for it.
 */
const PG_PARAMETERS = [
  'application_name',
  'client_encoding',
  'connect_timeout',
  'db',
  'encoding',
  'fallback_application_name',
  'host',
  'idle_in_transaction_session_timeout',
  'keepalives',
  'keepalives_idle',
  'lock_timeout',
  'options',
  'password',
  'port',
  'query_timeout',
  'replication',
  'ssl',
  'sslcert',
  'sslkey',
  'sslmode',
  'sslnegotiation',
  'sslrootcert',
  'statement_timeout',
  'user',
  'uselibpqcompat',
]

/**
 * Splits a `postgres://` URL into what `pg` takes and our own parameters (`schema`), through
 * core's URL option parsing: an unknown parameter (neither ours nor `pg`'s) or a bad value is
 * InvalidOptionError naming it, credentials masked.
 */
export function parseUrl(text: string): {
  connectionString: string
  schema: string | undefined
  endpoint: string
} {
  const url = parseStoreUrl(text, ADAPTER)
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new InvalidOptionError(
      'url',
      `expected postgres:// or postgresql://, got ${maskCredentials(text)}`,
      { adapter: ADAPTER },
    )
  }
  const { options, url: rest } = optionsFromQuery(url, urlOptionsSchema, {
    adapter: ADAPTER,
    passThrough: PG_PARAMETERS,
  })
  return {
    connectionString: rest.toString(),
    schema: options.schema as string | undefined,
    endpoint: endpointOf(rest),
  }
}

/** Resolves the shared connection options (one of url or pool, schema from either place). */
export function resolveConnection(
  options: {
    readonly [K in keyof PostgresConnectionOptions]?: PostgresConnectionOptions[K] | undefined
  },
): ResolvedConnection {
  if ((options.url === undefined) === (options.pool === undefined)) {
    throw new InvalidOptionError('url', 'give exactly one of "url" or "pool"', { adapter: ADAPTER })
  }
  const fromUrl = options.url === undefined ? undefined : parseUrl(options.url)
  if (fromUrl?.schema !== undefined && options.schema !== undefined && fromUrl.schema !== options.schema) {
    throw new InvalidOptionError('schema', 'differs between the URL and the options', { adapter: ADAPTER })
  }
  return {
    connectionString: fromUrl?.connectionString,
    pool: options.pool,
    schema: options.schema ?? fromUrl?.schema ?? 'errand',
    migrate: options.migrate ?? true,
    poolSize: options.poolSize ?? 10,
    reconnectTimeoutMs: options.reconnectTimeoutMs ?? 30_000,
    connectTimeoutMs: options.connectTimeoutMs ?? 5000,
    closeTimeoutMs: options.closeTimeoutMs ?? 5000,
    logger: adapterLogger(options.logger),
    display: options.url === undefined ? 'pg.Pool' : maskCredentials(options.url),
    endpoint: fromUrl?.endpoint ?? 'pg.Pool',
  }
}

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

/** The zod schema of {@link PostgresBrokerOptions}. */
export const brokerOptionsSchema = z
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

/** Options of {@link PostgresResultBackend}. */
export interface PostgresResultBackendOptions extends PostgresConnectionOptions {
  /**
   * Expired rows are deleted in the background, in batches of 1000, at most this often (ms,
   * default 60000), triggered by writes: no cron job needed. 0 = never (clean up yourself).
   */
  readonly cleanupIntervalMs?: number
  /**
   * Task events kept per queue in the `events` table for `recentEvents` (writers trim back to it
   * in batches, so a queue holds up to about 10% more). Default 1000.
   */
  readonly eventRetention?: number
}

/** The zod schema of {@link PostgresResultBackendOptions}. */
export const resultBackendOptionsSchema = z
  .object({
    ...connectionOptionsShape,
    cleanupIntervalMs: z.number().int().min(0).optional(),
    eventRetention: z.number().int().min(1).max(1_000_000).optional(),
  })
  .strict()
