import type { z } from 'zod'
import { InvalidOptionError } from '../errors.js'
import { maskCredentials } from '../redact.js'

/** Options of {@link optionsFromQuery}. */
export interface QueryOptionsSpec {
  /** Adapter name, for errors. */
  readonly adapter: string
  /** URL parameter names that differ from their option's name: `{ lease: 'leaseMs' }`. */
  readonly rename?: Readonly<Record<string, string>>
  /**
   * Parameters left in the URL for the client library to read: their names (`sslmode`,
   * `heartbeat`), or a predicate saying which are (for a library that reads an open set; a list
   * is better when it can be written down, as an unknown parameter is then a typo it reports).
   */
  readonly passThrough?: readonly string[] | ((param: string) => boolean)
}

/**
 * What {@link optionsFromQuery} found. `Rest` is what it was given: a `URL`, or the
 * `URLSearchParams` of a store whose URLs `new URL` cannot read (a file path that starts with `.`).
 */
export interface QueryOptions<Rest extends URL | URLSearchParams = URL> {
  /** The options the query set, converted to their schema's types and validated by it. */
  readonly options: Record<string, unknown>
  /** The URL (or parameters) without the parameters taken: what the client library should see. */
  readonly url: Rest
}

/**
 * Parse `text` as a URL, or throw `ERR_INVALID_OPTION` (option `url`) with any password masked.
 */
export function parseStoreUrl(text: string, adapter: string): URL {
  if (typeof text !== 'string' || text.length === 0) {
    throw new InvalidOptionError('url', 'expected a URL string', { adapter })
  }
  try {
    return new URL(text)
  } catch (cause) {
    throw new InvalidOptionError('url', `not a URL: "${maskCredentials(text)}"`, { adapter, cause })
  }
}

type Kind = 'number' | 'boolean' | 'string'

/** The scalar kind a schema field takes, looking through optional/default/nullable wrappers. */
function kindOf(field: z.ZodType): Kind {
  let def = (field as unknown as { _zod: { def: { type: string; innerType?: z.ZodType; in?: z.ZodType } } })
    ._zod.def
  for (let i = 0; i < 8; i++) {
    const inner = def.innerType ?? (def.type === 'pipe' ? def.in : undefined)
    if (inner === undefined) break
    def = (inner as unknown as { _zod: { def: typeof def } })._zod.def
  }
  if (def.type === 'number' || def.type === 'int' || def.type === 'bigint') return 'number'
  if (def.type === 'boolean') return 'boolean'
  return 'string'
}

function convert(param: string, text: string, kind: Kind, adapter: string): unknown {
  if (kind === 'string') return text
  if (kind === 'boolean') {
    if (text === 'true' || text === '1' || text === '') return true
    if (text === 'false' || text === '0') return false
    throw new InvalidOptionError(param, `expected true or false, got "${text.slice(0, 100)}"`, { adapter })
  }
  const n = text.trim() === '' ? Number.NaN : Number(text)
  if (!Number.isFinite(n)) {
    throw new InvalidOptionError(param, `expected a number, got "${text.slice(0, 100)}"`, { adapter })
  }
  return n
}

/**
 * Take the options an adapter accepts in its URL's query from `url`, driven by the adapter's zod
 * options schema: each parameter names an option of `schema` (directly or through `rename`), its
 * text is converted to the option's type (number, boolean or string) and checked by the schema.
 * An unknown parameter, a value that does not convert, or one the schema refuses is
 * `ERR_INVALID_OPTION` naming the parameter (never the URL's password). One way to read URL
 * options for every adapter.
 *
 * @example
 * ```ts
 * const { options, url } = optionsFromQuery(parseStoreUrl(text, 'my'), myOptionsSchema, {
 *   adapter: 'my',
 *   rename: { lease: 'leaseMs' },
 * })
 * ```
 */
export function optionsFromQuery(
  url: URL,
  schema: z.ZodObject<z.ZodRawShape>,
  spec: QueryOptionsSpec,
): QueryOptions
export function optionsFromQuery(
  query: URLSearchParams,
  schema: z.ZodObject<z.ZodRawShape>,
  spec: QueryOptionsSpec,
): QueryOptions<URLSearchParams>
export function optionsFromQuery(
  given: URL | URLSearchParams,
  schema: z.ZodObject<z.ZodRawShape>,
  spec: QueryOptionsSpec,
): QueryOptions<URL | URLSearchParams> {
  const { adapter } = spec
  const shape = schema.shape
  const passList = typeof spec.passThrough === 'function' ? [] : (spec.passThrough ?? [])
  const passes =
    typeof spec.passThrough === 'function' ? spec.passThrough : (param: string) => passList.includes(param)
  const out = given instanceof URL ? new URL(given.href) : new URLSearchParams(given)
  const rest = out instanceof URL ? out.searchParams : out
  const options: Record<string, unknown> = {}
  const params = new Map<string, string>()
  for (const [param, text] of given instanceof URL ? given.searchParams : given) {
    if (passes(param)) continue
    const key = spec.rename?.[param] ?? param
    const field = Object.hasOwn(shape, key) ? shape[key] : undefined
    if (field === undefined) {
      const known = [...Object.keys(spec.rename ?? {}), ...Object.keys(shape), ...passList]
      throw new InvalidOptionError(
        param,
        `unknown URL parameter (known: ${[...new Set(known)].sort().join(', ')})`,
        {
          adapter,
        },
      )
    }
    if (params.has(key)) throw new InvalidOptionError(param, 'given twice in the URL', { adapter })
    params.set(key, param)
    options[key] = convert(param, text, kindOf(field as z.ZodType), adapter)
    rest.delete(param)
  }
  if (params.size > 0) {
    const picked = schema.pick(Object.fromEntries([...params.keys()].map((k) => [k, true])) as never)
    const parsed = picked.safeParse(options)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!
      const key = String(issue.path[0] ?? '')
      throw new InvalidOptionError(params.get(key) ?? key, issue.message, { adapter })
    }
    return { options: parsed.data as Record<string, unknown>, url: out }
  }
  return { options, url: out }
}
