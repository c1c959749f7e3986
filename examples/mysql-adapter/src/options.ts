import { InvalidOptionError, maskCredentials } from '@errand/core'
import { z } from 'zod'

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
/** Options of {@link MySqlBroker}, defaults filled. */
export type ResolvedMySqlOptions = z.output<typeof mysqlBrokerOptionsSchema>

const NUMERIC = new Set(['poolSize', 'pollMs', 'leaseMs'])

/**
 * Options from a URL's query string merged with `options`, checked by the schema: an unknown or
 * malformed parameter is refused with `ERR_INVALID_OPTION` naming it, and the URL is never
 * printed with its password.
 */
export function resolveOptions(options: MySqlBrokerOptions): ResolvedMySqlOptions {
  let url: URL
  try {
    url = new URL(options.url)
  } catch {
    throw new InvalidOptionError('url', `not a URL: ${maskCredentials(options.url)}`)
  }
  if (url.protocol !== 'mysql:') {
    throw new InvalidOptionError('url', `expected mysql://, got ${maskCredentials(options.url)}`)
  }
  const fromQuery: Record<string, unknown> = {}
  for (const [key, value] of url.searchParams) {
    fromQuery[key] = NUMERIC.has(key) ? Number(value) : value
  }
  const parsed = mysqlBrokerOptionsSchema.safeParse({ ...fromQuery, ...options })
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const key =
      issue?.path.join('.') || String((issue as { keys?: string[] } | undefined)?.keys?.[0] ?? 'options')
    throw new InvalidOptionError(key, issue?.message ?? 'invalid')
  }
  return parsed.data
}

/** The connection URL without Errand's own query parameters (mysql2 refuses unknown ones). */
export function connectionUri(url: string): string {
  const u = new URL(url)
  for (const key of mysqlBrokerOptionsSchema.keyof().options) u.searchParams.delete(key)
  return u.toString()
}
