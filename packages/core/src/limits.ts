import { z } from 'zod'
import { InvalidOptionError } from './errors.js'

/**
 * At most `max` starts per `perMs` (a sliding window), across every worker process. With `key`,
 * one window per key computed from the input (`(input) => input.accountId`): keys do not share
 * or starve each other's budget. A task over its limit waits for its slot without spending an
 * attempt: it goes back to its queue, delayed until the window has room.
 */
export interface RateLimit<In = unknown> {
  readonly max: number
  readonly perMs: number
  /** One window per value (a string of 1 to 200 characters, no NUL). Default: one window for all. */
  readonly key?: (input: In) => string
}

/**
 * At most `max` running at once (per key, when `key` is given) across every worker process. The
 * slot is held on a lease (`leaseMs`, default 30 s) that the worker renews while the task runs,
 * so a crashed worker's slot comes back by itself once its lease runs out.
 */
export interface ConcurrencyLimit<In = unknown> {
  readonly max: number
  /** One set of `max` slots per value (a string of 1 to 200 characters). Default: one set for all. */
  readonly key?: (input: In) => string
  /** How long a slot outlives a worker that stopped renewing it. Default 30 000 ms. */
  readonly leaseMs?: number
}

/** Limits on everything that runs from one queue (`createApp({ queues: { name: limits } })`). */
export interface QueueLimits {
  /** The key function gets each task's input. */
  readonly rateLimit?: RateLimit<unknown>
  readonly concurrency?: ConcurrencyLimit<unknown>
}

/** Default lease of a concurrency slot. */
export const DEFAULT_SLOT_LEASE_MS = 30_000

const keyFn = z.custom<(input: never) => string>((v) => typeof v === 'function', {
  message: 'expected a function (input) => string',
})

/** Checks a rate limit (unknown keys refused). */
export const rateLimitSchema = z
  .object({
    max: z.number().int().min(1).max(1_000_000),
    perMs: z.number().int().min(1).max(86_400_000),
    key: keyFn.optional(),
  })
  .strict()

/** Checks a concurrency limit (unknown keys refused). */
export const concurrencyLimitSchema = z
  .object({
    max: z.number().int().min(1).max(100_000),
    key: keyFn.optional(),
    leaseMs: z.number().int().min(100).max(86_400_000).optional(),
  })
  .strict()

/** Checks one queue's limits. */
export const queueLimitsSchema = z
  .object({ rateLimit: rateLimitSchema.optional(), concurrency: concurrencyLimitSchema.optional() })
  .strict()

/** Largest key a key function may return. */
export const MAX_LIMIT_KEY = 200

/**
 * The key a limit's key function gives for `input` (`''` without one). Throws `ERR_INVALID_OPTION`
 * naming the limit when it throws or returns something other than a string of 1 to 200
 * characters: the worker then dead-letters the task as `invalid-input`.
 */
export function limitKey(
  limit: { readonly key?: ((input: never) => string) | undefined },
  input: unknown,
  name: string,
): string {
  if (!limit.key) return ''
  let key: unknown
  try {
    key = (limit.key as (input: unknown) => unknown)(input)
  } catch (err) {
    throw new InvalidOptionError(`${name}.key`, `the key function threw: ${String(err)}`)
  }
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_LIMIT_KEY || key.includes('\u0000')) {
    throw new InvalidOptionError(
      `${name}.key`,
      `the key function must return a string of 1 to ${MAX_LIMIT_KEY} characters without NUL, got ${typeof key === 'string' ? `${key.length} characters` : typeof key}`,
    )
  }
  return key
}
