import { InvalidOptionError, maskCredentials } from '@errand/core'
import { z } from 'zod'
import type { PgPool } from './pg-types.js'

/** Adapter name used in errors and logs. */
export const ADAPTER = 'postgres'

/** Where warnings go (a failed fetch that will be retried, a lost LISTEN connection…). */
export interface PostgresLogger {
  warn(message: string, details?: Record<string, unknown>): void
}

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
   * How long a retry-safe operation (ack, nack, state reads…) keeps retrying while the server is
   * unreachable, and how long a publish waits for a connection, in ms (default 30000).
   */
  readonly reconnectTimeoutMs?: number
  /** Default: warnings to `console.warn`, with credentials masked. */
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
  readonly logger: PostgresLogger
  /** The URL with its password masked, for messages. */
  readonly display: string
}

/** Validates `input` against a zod object and turns the first issue into an InvalidOptionError. */
export function parseOptions<T>(schema: z.ZodType<T>, input: unknown): T {
  if (typeof input !== 'object' || input === null) {
    throw new InvalidOptionError('options', 'expected an object', { adapter: ADAPTER })
  }
  const parsed = schema.safeParse(input)
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]
  let name = issue && issue.path.length > 0 ? issue.path.join('.') : 'options'
  let message = issue?.message ?? 'invalid'
  if (issue?.code === 'unrecognized_keys') {
    name = issue.keys[0] ?? name
    message = 'unknown option'
  }
  throw new InvalidOptionError(name, maskCredentials(message), { adapter: ADAPTER })
}

const consoleLogger: PostgresLogger = {
  warn: (message, details) => console.warn(`[errand:postgres] ${maskCredentials(message)}`, details ?? ''),
}

/**
 * Splits a `postgres://` URL into what `pg` takes and our own parameters (`schema`).
 * Throws InvalidOptionError (credentials masked) on anything else.
 */
export function parseUrl(url: string): { connectionString: string; schema: string | undefined } {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch (cause) {
    throw new InvalidOptionError('url', `not a URL: ${maskCredentials(url)}`, { adapter: ADAPTER, cause })
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new InvalidOptionError(
      'url',
      `expected postgres:// or postgresql://, got ${maskCredentials(url)}`,
      { adapter: ADAPTER },
    )
  }
  const schema = parsed.searchParams.get('schema') ?? undefined
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new InvalidOptionError('schema', 'must match /^[a-z_][a-z0-9_]{0,39}$/', { adapter: ADAPTER })
  }
  parsed.searchParams.delete('schema')
  return { connectionString: parsed.toString(), schema }
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
    logger: options.logger ?? consoleLogger,
    display: options.url === undefined ? 'pg.Pool' : maskCredentials(options.url),
  }
}
