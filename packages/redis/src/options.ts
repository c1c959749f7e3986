import type { ConnectionOptions as TlsOptions } from 'node:tls'
import {
  consoleLogger,
  InvalidOptionError,
  type Logger,
  maskCredentials,
  maskingLogger,
  optionsFromQuery,
  parseOptions,
  parseStoreUrl,
} from '@errand/core'
import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { z } from 'zod'
import { DEFAULT_EVENT_RETENTION } from './events.js'

const ADAPTER = { adapter: 'redis' } as const

/**
 * ioredis options we pass through. `replyMapping` is left out: the adapter reads replies in the
 * default (`legacy`) shape, and with `exactOptionalPropertyTypes` ioredis' own type needs this.
 */
export type PassThroughRedisOptions = Omit<RedisOptions, 'replyMapping'>

/** A client the caller owns: a standalone `Redis` or a `Cluster`. */
export type RedisClient = Redis | Cluster

/** How to reach Redis: give exactly one of `url` and `client`. */
export interface RedisConnectionOptions {
  /**
   * `redis://[user:password@]host[:port][/db][?keyPrefix=…]` or `rediss://…` (TLS). Query
   * parameters: `keyPrefix`, and for a broker `leaseMs` and `maxPriority`.
   */
  readonly url?: string
  /**
   * An existing client. The adapter never closes a client it did not create; it `duplicate()`s
   * it for its blocking and subscriber connections and closes those duplicates on `close()`.
   */
  readonly client?: RedisClient
  /** TLS options for `rediss://` (CA, client certificate, `servername`…). */
  readonly tls?: TlsOptions
  /** Extra ioredis options for the connections the adapter creates from `url`. */
  readonly redisOptions?: PassThroughRedisOptions
  /**
   * Prefix of every key (default `errand`). Keys of one queue share the hash tag `{queue}`, so
   * a queue lives on one Redis Cluster slot. No `{` or `}` allowed.
   */
  readonly keyPrefix?: string
  /**
   * Where the adapter reports what it cannot throw to a caller (a failed fetch, a delivery
   * handler that threw, a stray message on a result channel, a refused SELECT after a
   * reconnect). Pass the app's logger (`createApp` does for URLs). Default: core's
   * `consoleLogger`. Lines are credential-masked. (Garbage items in a queue are not logged: they
   * are dead-lettered as `undecodable`, where `listDeadLetters` shows them.)
   */
  readonly logger?: Logger
}

/** Options of {@link RedisBroker}. */
export interface RedisBrokerOptions extends RedisConnectionOptions {
  /** Lease of a delivery when the consumer gives none, in ms (default 30 000). */
  readonly leaseMs?: number
  /** Highest priority accepted, 0..20 (default 9). Each level is one list per queue. */
  readonly maxPriority?: number
  /** Largest message body accepted, in bytes (default 10 MiB). */
  readonly maxMessageBytes?: number
}

/** Options of {@link RedisResultBackend}. */
export interface RedisResultBackendOptions extends RedisConnectionOptions {
  /**
   * Task events kept per queue for `recentEvents` (a stream trimmed with `MAXLEN ~`, so up to
   * about 100 more). Live subscribers read an all-queues stream kept at ten times this. Default 1000.
   */
  readonly eventRetention?: number
  /**
   * How often `waitFor` reads every awaited record again, in case a notification was lost (a
   * publish that met a cut connection). Pub/sub wakes waiters at once; this is the safety net.
   * Default 10,000 ms.
   */
  readonly waitPollMs?: number
}

/** Default of `waitPollMs`: the waiters' safety poll, 10 s. */
const DEFAULT_WAIT_POLL_MS = 10_000

/** Default lease of a delivery: 30 s. */
export const DEFAULT_LEASE_MS = 30_000
/** Default highest priority. */
export const DEFAULT_MAX_PRIORITY = 9
/** Default largest message body: 10 MiB (the envelope decoder's default cap). */
export const DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024
/** Default key prefix. */
export const DEFAULT_KEY_PREFIX = 'errand'

const isClient = (value: unknown): boolean => value instanceof Redis || value instanceof Cluster

const isLogger = (v: unknown): boolean =>
  typeof v === 'object' &&
  v !== null &&
  ['debug', 'info', 'warn', 'error'].every((k) => typeof (v as Record<string, unknown>)[k] === 'function')

/** Highest db number a Redis server can have (its `databases` setting is a C int). */
const MAX_DB = 2 ** 31 - 1

const connectionShape = {
  url: z.string().optional(),
  client: z
    .custom<RedisClient>(isClient, { message: 'expected an ioredis Redis or Cluster instance' })
    .optional(),
  tls: z.record(z.string(), z.unknown()).optional(),
  redisOptions: z.record(z.string(), z.unknown()).optional(),
  keyPrefix: z
    .string()
    .min(1)
    .regex(/^[^{}]*$/, 'must not contain "{" or "}"')
    .optional(),
  logger: z.custom<Logger>(isLogger, { message: 'expected a Logger (debug, info, warn, error)' }).optional(),
}

const brokerShape = {
  ...connectionShape,
  leaseMs: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
  maxPriority: z.number().int().min(0).max(20).optional(),
}

const brokerSchema = z
  .object({
    ...brokerShape,
    maxMessageBytes: z
      .number()
      .int()
      .positive()
      .max(512 * 1024 * 1024)
      .optional(),
  })
  .strict()

const backendSchema = z
  .object({
    ...connectionShape,
    eventRetention: z.number().int().min(1).max(1_000_000).optional(),
    waitPollMs: z.number().int().min(10).max(3_600_000).optional(),
  })
  .strict()

/** What a broker URL's query may set (read by core's `optionsFromQuery`). */
const brokerQuery = z.object({
  keyPrefix: connectionShape.keyPrefix,
  leaseMs: brokerShape.leaseMs,
  maxPriority: brokerShape.maxPriority,
})
/** What a result backend URL's query may set. */
const backendQuery = z.object({ keyPrefix: connectionShape.keyPrefix })

/** The options a URL's query set. */
interface QueryOptions {
  readonly keyPrefix?: string
  readonly leaseMs?: number
  readonly maxPriority?: number
}

/** Broker options after validation, with the URL's query parameters applied. */
export interface ParsedBrokerOptions {
  readonly connection: ConnectionPlan
  readonly logger: Logger
  readonly keyPrefix: string
  readonly leaseMs: number
  readonly maxPriority: number
  readonly maxMessageBytes: number
}

/** Backend options after validation. */
export interface ParsedBackendOptions {
  readonly connection: ConnectionPlan
  readonly logger: Logger
  readonly keyPrefix: string
  /** Events kept per queue (default 1000). */
  readonly eventRetention: number
  /** The waiters' safety poll (default 10 s). */
  readonly waitPollMs: number
}

/** Where the adapter's connections come from. */
export type ConnectionPlan =
  | {
      readonly kind: 'owned'
      readonly options: PassThroughRedisOptions
      readonly display: string
      /** The option that set `options.db` (named when the server refuses it). */
      readonly dbOption: string
    }
  | { readonly kind: 'borrowed'; readonly client: RedisClient; readonly display: string }

/** A URL given alone is `{ url }`; no options at all are `{}` (the default URL). */
function asObject(options: unknown): unknown {
  return typeof options === 'string' ? { url: options } : (options ?? {})
}

/** Validates broker options; throws `InvalidOptionError` naming the field. */
export function parseBrokerOptions(options: RedisBrokerOptions | string): ParsedBrokerOptions {
  const raw = parseOptions(brokerSchema, asObject(options), ADAPTER.adapter) as RedisBrokerOptions
  const { plan, query } = connectionPlan(raw, brokerQuery)
  return {
    connection: plan,
    logger: maskingLogger(raw.logger ?? consoleLogger),
    keyPrefix: raw.keyPrefix ?? query.keyPrefix ?? DEFAULT_KEY_PREFIX,
    leaseMs: raw.leaseMs ?? query.leaseMs ?? DEFAULT_LEASE_MS,
    maxPriority: raw.maxPriority ?? query.maxPriority ?? DEFAULT_MAX_PRIORITY,
    maxMessageBytes: raw.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
  }
}

/** Validates backend options; throws `InvalidOptionError` naming the field. */
export function parseBackendOptions(options: RedisResultBackendOptions | string): ParsedBackendOptions {
  const raw = parseOptions(backendSchema, asObject(options), ADAPTER.adapter) as RedisResultBackendOptions
  const { plan, query } = connectionPlan(raw, backendQuery)
  return {
    connection: plan,
    logger: maskingLogger(raw.logger ?? consoleLogger),
    keyPrefix: raw.keyPrefix ?? query.keyPrefix ?? DEFAULT_KEY_PREFIX,
    eventRetention: raw.eventRetention ?? DEFAULT_EVENT_RETENTION,
    waitPollMs: raw.waitPollMs ?? DEFAULT_WAIT_POLL_MS,
  }
}

function connectionPlan(
  raw: RedisConnectionOptions,
  querySchema: z.ZodObject<z.ZodRawShape>,
): { plan: ConnectionPlan; query: QueryOptions } {
  if (raw.url !== undefined && raw.client !== undefined) {
    throw new InvalidOptionError('client', 'give either url or client, not both', ADAPTER)
  }
  if (raw.client !== undefined) {
    if (raw.tls !== undefined || raw.redisOptions !== undefined) {
      const field = raw.tls !== undefined ? 'tls' : 'redisOptions'
      throw new InvalidOptionError(
        field,
        'only applies to connections created from url, not to a given client',
        ADAPTER,
      )
    }
    return {
      plan: { kind: 'borrowed', client: raw.client, display: 'the given client' },
      query: {},
    }
  }
  const url = raw.url ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
  const parsed = parseRedisUrl(url)
  const query = optionsFromQuery(parsed.url, querySchema, ADAPTER).options as QueryOptions
  const options: PassThroughRedisOptions = {
    ...parsed.options,
    ...(raw.redisOptions as PassThroughRedisOptions),
  }
  if (raw.tls !== undefined) {
    if (!parsed.tls) throw new InvalidOptionError('tls', 'only applies to rediss:// URLs', ADAPTER)
    options.tls = { ...(parsed.options.tls ?? {}), ...raw.tls }
  }
  const fromOptions = raw.redisOptions !== undefined && 'db' in raw.redisOptions
  if (fromOptions && !isDb(options.db)) {
    throw new InvalidOptionError(
      'redisOptions.db',
      `expected a database number (an integer >= 0), got ${JSON.stringify(options.db) ?? 'undefined'}`,
      ADAPTER,
    )
  }
  return {
    plan: {
      kind: 'owned',
      options,
      display: maskCredentials(url),
      dbOption: fromOptions ? 'redisOptions.db' : 'db',
    },
    query,
  }
}

function isDb(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_DB
}

/** What a Redis URL says. */
export interface ParsedRedisUrl {
  readonly options: PassThroughRedisOptions
  readonly tls: boolean
  /** The parsed URL (its query holds the adapter's options: see `optionsFromQuery`). */
  readonly url: URL
}

/**
 * Parses `redis://[user:password@]host[:port][/db]` and `rediss://…` into ioredis options.
 * Throws `InvalidOptionError` for `url` (with the password masked) when malformed.
 */
export function parseRedisUrl(url: string): ParsedRedisUrl {
  const invalid = (why: string, cause?: unknown) =>
    new InvalidOptionError('url', `${why}, got "${maskCredentials(url)}"`, { ...ADAPTER, cause })
  const u = parseStoreUrl(url, ADAPTER.adapter)
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw invalid('expected redis:// or rediss://')
  const tls = u.protocol === 'rediss:'
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1'
  const port = u.port === '' ? 6379 : Number(u.port)
  const options: PassThroughRedisOptions = { host, port }
  try {
    if (u.username !== '') options.username = decodeURIComponent(u.username)
    if (u.password !== '') options.password = decodeURIComponent(u.password)
  } catch (cause) {
    throw invalid('credentials are not valid percent-encoding', cause)
  }
  const path = u.pathname.replace(/^\//, '')
  if (path !== '') {
    // Checked here: ioredis would send any value as SELECT, and a server that refuses it is used
    // on db 0 (see connection.ts).
    const db = Number(path)
    if (!/^\d+$/.test(path) || !isDb(db)) {
      throw new InvalidOptionError(
        'db',
        `the URL path must be a database number (an integer >= 0), got "/${maskCredentials(path)}"`,
        ADAPTER,
      )
    }
    options.db = db
  }
  if (tls) options.tls = { servername: host }
  return { options, tls, url: u }
}
