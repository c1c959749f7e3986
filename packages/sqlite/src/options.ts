import { isAbsolute, resolve } from 'node:path'
import { InvalidOptionError, optionsFromQuery, parseOptions as parseOptionsWith } from '@errand/core'
import { z } from 'zod'

/** Adapter name used in errors and logs. */
export const ADAPTER = 'sqlite'

/** The special path of the process-wide in-memory database. */
export const MEMORY_PATH = ':memory:'

/** Where warnings go (a cycle that failed and will be retried, a sweep that failed…). */
export interface SqliteLogger {
  warn(message: string, details?: Record<string, unknown>): void
}

/**
 * How much a commit waits for the disk.
 * - `publish` (default): a publish resolves only after an fsync; settles, leases and results
 *   survive a crash of the process but a power loss can forget the last ones (the jobs are then
 *   delivered again, never lost).
 * - `full`: every commit fsyncs.
 * - `process`: no commit fsyncs (the WAL is synced at checkpoints): survives a crash of the
 *   process, a power loss can forget recent publishes too.
 */
export type Durability = 'publish' | 'full' | 'process'

/** Options shared by {@link SqliteBroker} and {@link SqliteResultBackend}. */
export interface SqliteConnectionOptions {
  /**
   * `sqlite:///abs/path.db`, `sqlite://./relative.db` (relative to the working directory when the
   * instance is made) or `sqlite::memory:` (one in-memory database per process). Required. Its
   * query may set the other scalar options (`?durability=full&busyTimeoutMs=10000`); an option
   * given to the constructor wins over the URL's.
   */
  readonly url: string
  /** Whether commits wait for the disk (default `publish`, see {@link Durability}). */
  readonly durability?: Durability
  /**
   * How long a write waits for another process's write lock before failing with
   * `ERR_CONNECTION`, in ms (default 5000). The event loop is never blocked for more than 2 ms
   * of it at a time: the wait is retried on timers.
   */
  readonly busyTimeoutMs?: number
  /**
   * Longest pause between two looks for writes made by other processes, in ms (default 100). An
   * idle instance looks every 5 ms, backing off to this; a change found resets it. Writes from
   * this process wake its consumers and waiters at once, without polling.
   */
  readonly pollIntervalMs?: number
  /** Default: warnings to `console.warn`. */
  readonly logger?: SqliteLogger
}

const logger = z.custom<SqliteLogger>(
  (v) => typeof v === 'object' && v !== null && typeof (v as SqliteLogger).warn === 'function',
  { message: 'expected an object with a warn(message) method' },
)

/** The zod shape of {@link SqliteConnectionOptions}; the broker and backend extend it. */
export const connectionOptionsShape = {
  url: z.string(),
  durability: z.enum(['publish', 'full', 'process']).optional(),
  busyTimeoutMs: z.number().int().min(0).max(3_600_000).optional(),
  pollIntervalMs: z.number().int().min(5).max(60_000).optional(),
  logger: logger.optional(),
}

/** Default events kept per queue. */
export const DEFAULT_EVENT_RETENTION = 1000
/** Largest `eventRetention` (as on Redis and PostgreSQL). */
export const MAX_EVENT_RETENTION = 1_000_000

/** Options of {@link SqliteBroker}. */
export interface SqliteBrokerOptions extends SqliteConnectionOptions {
  /** Lease of a delivery when `consume` gives none, in ms (default 30000). */
  readonly leaseMs?: number
  /** Largest body accepted, in bytes (default 10 MiB). */
  readonly maxMessageBytes?: number
}

/** The zod schema of {@link SqliteBrokerOptions}. */
export const brokerOptionsSchema = z
  .object({
    ...connectionOptionsShape,
    leaseMs: z.number().int().min(1).optional(),
    maxMessageBytes: z
      .number()
      .int()
      .min(1)
      .max(512 * 1024 * 1024)
      .optional(),
  })
  .strict()

/** Options of {@link SqliteResultBackend}. */
export interface SqliteResultBackendOptions extends SqliteConnectionOptions {
  /**
   * Expired rows are deleted in batches of 1000, at most this often (ms, default 60000),
   * triggered by writes: no cron job needed. 0 = never (reads ignore expired rows anyway).
   */
  readonly cleanupIntervalMs?: number
  /**
   * Task events kept per queue for `recentEvents` (default 1000, at most 1,000,000). Each writer
   * trims a queue back to it once it has added a tenth of it (at least 10), so a queue holds up
   * to about the retention plus a tenth of it per writing process.
   */
  readonly eventRetention?: number
}

/** The zod schema of {@link SqliteResultBackendOptions}. */
export const backendOptionsSchema = z
  .object({
    ...connectionOptionsShape,
    cleanupIntervalMs: z.number().int().min(0).optional(),
    eventRetention: z.number().int().min(1).max(MAX_EVENT_RETENTION).optional(),
  })
  .strict()

/** Connection settings after validation. */
export interface ResolvedConnection {
  /** Absolute file path, or {@link MEMORY_PATH}. */
  readonly path: string
  readonly durability: Durability
  readonly busyTimeoutMs: number
  readonly pollIntervalMs: number
  readonly logger: SqliteLogger
}

/**
 * Validates `input` against one of the schemas above with core's `parseOptions` (the first
 * issue is `ERR_INVALID_OPTION` naming the option), then adds the options the URL's query sets,
 * read through core's `optionsFromQuery` with the same schema (the constructor's own options
 * win). The query is read as bare parameters: `new URL` cannot read a path such as `./x.db`.
 */
export function parseOptions<S extends z.ZodObject>(schema: S, input: unknown): z.infer<S> {
  const parsed = parseOptionsWith(schema, input, ADAPTER) as Record<string, unknown>
  const given = Object.fromEntries(Object.entries(parsed).filter(([, v]) => v !== undefined))
  const { query } = splitQuery(given.url as string)
  if (query === undefined) return given as z.infer<S>
  // Only scalar options can travel in a URL: never the URL itself or the logger.
  const scalars = schema.omit({ url: true, logger: true } as never) as z.ZodObject<z.ZodRawShape>
  const { options } = optionsFromQuery(new URLSearchParams(query), scalars, { adapter: ADAPTER })
  return { ...options, ...given } as z.infer<S>
}

/** A URL's text before its query, and the query (without `?`) when it has one. */
function splitQuery(url: string): { readonly base: string; readonly query: string | undefined } {
  const at = url.indexOf('?')
  return at === -1 ? { base: url, query: undefined } : { base: url.slice(0, at), query: url.slice(at + 1) }
}

const consoleLogger: SqliteLogger = {
  warn: (message, details) => console.warn(`[errand:sqlite] ${message}`, details ?? ''),
}

/**
 * The database path a URL names. `sqlite::memory:` (or `sqlite://:memory:`) is the in-memory
 * database; `sqlite:///abs/path.db` an absolute path; `sqlite://<path>` with a path not starting
 * with `/` (`./errand.db`, `data/errand.db`, `../x.db`) is relative to `cwd`. Percent-escapes
 * are decoded; a fragment is refused. The query (options, see `SqliteConnectionOptions.url`) is
 * not part of the path. The path is parsed here, not by `URL`, which would read `./x.db` as a
 * host.
 */
export function parseSqliteUrl(url: string, cwd: string = process.cwd()): string {
  const invalid = (why: string) => new InvalidOptionError('url', `${why}, got "${url}"`, { adapter: ADAPTER })
  if (typeof url !== 'string') throw invalid('expected a string')
  if (url.includes('#')) throw invalid('a fragment (#) is not allowed')
  const { base } = splitQuery(url)
  if (/^sqlite:(\/\/)?:memory:$/i.test(base)) return MEMORY_PATH
  const match = /^sqlite:\/\/([^?#]+)$/i.exec(base)
  if (match === null) {
    throw invalid('expected sqlite:///absolute/path.db, sqlite://./relative/path.db or sqlite::memory:')
  }
  let path: string
  try {
    path = decodeURIComponent(match[1]!)
  } catch {
    throw invalid('the path is not valid percent-encoding')
  }
  if (path.includes('\0')) throw invalid('the path contains a NUL byte')
  return isAbsolute(path) ? resolve(path) : resolve(cwd, path)
}

/** Resolves the shared connection options. */
export function resolveConnection(
  options: {
    readonly [K in keyof SqliteConnectionOptions]?: SqliteConnectionOptions[K] | undefined
  },
): ResolvedConnection {
  if (options.url === undefined) {
    throw new InvalidOptionError('url', 'required (e.g. sqlite://./errand.db)', { adapter: ADAPTER })
  }
  return {
    path: parseSqliteUrl(options.url),
    durability: options.durability ?? 'publish',
    busyTimeoutMs: options.busyTimeoutMs ?? 5000,
    pollIntervalMs: options.pollIntervalMs ?? 100,
    logger: options.logger ?? consoleLogger,
  }
}
