import { z } from 'zod'
import { InvalidOptionError } from '../errors.js'
import { maskCredentials } from '../redact.js'
import { MemoryStore } from './memory-store.js'

/** Default lease of a delivery when `ConsumeOptions.leaseMs` is not given: 30 s. */
export const DEFAULT_MEMORY_LEASE_MS = 30_000

/**
 * Capability overrides for a {@link MemoryBroker}, to make it behave like a more limited store
 * (in tests of code that must cope with one). Anything left out keeps the memory default.
 */
export interface MemoryCapabilityOverrides {
  /** Default `Number.MAX_SAFE_INTEGER` (any delay). */
  readonly maxDelayMs?: number
  /** Default 9. 0 turns priorities off. */
  readonly maxPriority?: number
  /** Default true. False: deliveries are held until settled or until the broker closes. */
  readonly leases?: boolean
  /** Default 10 MiB. */
  readonly maxMessageBytes?: number
  /** Default 1000 (the memory broker takes any batch in one call; this is a hint to callers). */
  readonly maxBatchSize?: number
}

/** Where a memory broker or backend keeps its state: give at most one of these. */
export interface MemoryStoreSelector {
  /** Name of the process-wide store to open (default `default`). */
  readonly name?: string
  /** `memory://` (store `default`) or `memory://<name>`. */
  readonly url?: string
  /** An explicit store, e.g. a private `new MemoryStore()`. */
  readonly store?: MemoryStore
}

/** Options of {@link MemoryBroker}. */
export interface MemoryBrokerOptions extends MemoryStoreSelector {
  /** Lease of a delivery when the consumer gives none, in ms (default 30 000). */
  readonly leaseMs?: number
  /** Behave like a more limited store. */
  readonly capabilities?: MemoryCapabilityOverrides
}

/** Options of {@link MemoryResultBackend}. */
export interface MemoryResultBackendOptions extends MemoryStoreSelector {}

const selector = {
  name: z.string().min(1).optional(),
  url: z.string().optional(),
  store: z.instanceof(MemoryStore, { message: 'expected a MemoryStore' }).optional(),
}

const brokerSchema = z
  .object({
    ...selector,
    leaseMs: z.number().int().positive().optional(),
    capabilities: z
      .object({
        maxDelayMs: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
        maxPriority: z.number().int().min(0).max(255).optional(),
        leases: z.boolean().optional(),
        maxMessageBytes: z.number().int().positive().optional(),
        maxBatchSize: z.number().int().positive().optional(),
      })
      .strict()
      .optional(),
  })
  .strict()

const backendSchema = z.object(selector).strict()

/** Validates broker options; throws `InvalidOptionError` naming the field. */
export function parseBrokerOptions(options: MemoryBrokerOptions): MemoryBrokerOptions {
  return check(brokerSchema, options) as MemoryBrokerOptions
}

/** Validates backend options; throws `InvalidOptionError` naming the field. */
export function parseBackendOptions(options: MemoryResultBackendOptions): MemoryResultBackendOptions {
  return check(backendSchema, options) as MemoryResultBackendOptions
}

/** The store the options select: `store`, else the named one (from `name` or `url`). */
export function selectStore(options: MemoryStoreSelector): MemoryStore {
  const given = (['name', 'url', 'store'] as const).filter((key) => options[key] !== undefined)
  if (given.length > 1) {
    throw new InvalidOptionError(
      given[1]!,
      `give only one of name, url and store (got ${given.join(', ')})`,
      {
        adapter: 'memory',
      },
    )
  }
  if (options.store !== undefined) return options.store
  if (options.url !== undefined) return MemoryStore.named(parseMemoryUrl(options.url))
  return MemoryStore.named(options.name)
}

/**
 * The store name in a memory URL: `memory:` and `memory://` give `default`, `memory://jobs`
 * gives `jobs` (percent-decoded). Anything else throws `InvalidOptionError` for `url`.
 */
export function parseMemoryUrl(url: string): string {
  const match = /^memory:(?:\/\/([^/?#]*)\/?)?$/i.exec(url)
  const invalid = (why: string, cause?: unknown) =>
    new InvalidOptionError('url', `${why}, got "${maskCredentials(url)}"`, { adapter: 'memory', cause })
  if (match === null) throw invalid('expected memory:// or memory://<name>')
  const raw = match[1]
  if (raw === undefined || raw === '') return 'default'
  try {
    return decodeURIComponent(raw)
  } catch (cause) {
    throw invalid('the store name is not valid percent-encoding', cause)
  }
}

function check(schema: z.ZodType, options: unknown): unknown {
  const parsed = schema.safeParse(options ?? {})
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]
  const path = issue === undefined ? [] : [...issue.path]
  // An unknown key is named itself, so that a typo points at the typo.
  if (issue?.code === 'unrecognized_keys' && issue.keys[0] !== undefined) path.push(issue.keys[0])
  const field = path.length > 0 ? path.join('.') : '(options)'
  throw new InvalidOptionError(field, issue?.message ?? 'invalid', { adapter: 'memory' })
}
