import {
  InvalidOptionError,
  maskCredentials,
  optionsFromQuery,
  parseOptions,
  parseStoreUrl,
} from '@errand/core'
import { z } from 'zod'

/** The adapter's name in errors and logs. */
export const ADAPTER = 'mysql'

/** Options of {@link MySqlBroker}. */
export const mysqlBrokerOptionsSchema = z
  .object({
    /** `mysql://user:password@host:3306/database?table=errand&poolSize=10&pollMs=200`. */
    url: z.string().min(1),
    /** Prefix of the two tables (`<table>_jobs`, `<table>_dead`). Default `errand`. */
    table: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,40}$/, 'lower-case letters, digits and _, at most 41 characters')
      .default('errand'),
    /** Connections in the pool. Default 10. */
    poolSize: z.number().int().min(1).max(100).default(10),
    /** Longest an idle consumer waits before looking again (other processes' publishes). Default 200 ms. */
    pollMs: z.number().int().min(10).max(10_000).default(200),
    /** Lease of a delivery when `consume` names none. Default 30 s. */
    leaseMs: z.number().int().min(100).default(30_000),
  })
  .strict()

/** Options of {@link MySqlBroker}, as given. */
export type MySqlBrokerOptions = z.input<typeof mysqlBrokerOptionsSchema>

/** Options of {@link MySqlBroker}, defaults filled, plus what mysql2 is given. */
export type ResolvedMySqlOptions = z.output<typeof mysqlBrokerOptionsSchema> & {
  /** The URL without Errand's own query parameters (mysql2 refuses unknown ones). */
  readonly connectionUri: string
}

/**
 * Options from the URL's query string (converted and checked by core's `optionsFromQuery`: an
 * unknown or malformed parameter is `ERR_INVALID_OPTION` naming it, the password masked), merged
 * under the explicit `options` and checked by the schema.
 */
export function resolveOptions(options: MySqlBrokerOptions): ResolvedMySqlOptions {
  const parsedUrl = parseStoreUrl(options.url, ADAPTER)
  if (parsedUrl.protocol !== 'mysql:') {
    throw new InvalidOptionError('url', `expected mysql://, got ${maskCredentials(options.url)}`, {
      adapter: ADAPTER,
    })
  }
  const query = optionsFromQuery(parsedUrl, mysqlBrokerOptionsSchema.omit({ url: true }), {
    adapter: ADAPTER,
  })
  const parsed = parseOptions(mysqlBrokerOptionsSchema, { ...query.options, ...options }, ADAPTER)
  return { ...parsed, connectionUri: query.url.toString() }
}
