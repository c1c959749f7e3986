import { z } from 'zod'
import { backoffDelay } from '../retry.js'

/** How an adapter waits between attempts to reach its store again. */
export const reconnectBackoffSchema = z
  .object({
    /** First wait, in ms. Default 100. */
    initialMs: z.number().int().min(1).optional(),
    /** Longest wait, in ms. Default 5000. */
    maxMs: z.number().int().min(1).optional(),
  })
  .strict()

/** @see reconnectBackoffSchema */
export type ReconnectBackoff = z.input<typeof reconnectBackoffSchema>

/** The reconnect waits every adapter uses unless configured: 100 ms doubling to 5 s. */
export const DEFAULT_RECONNECT_BACKOFF: { readonly initialMs: number; readonly maxMs: number } =
  Object.freeze({
    initialMs: 100,
    maxMs: 5000,
  })

/**
 * Wait before reconnect attempt `attempt` (1-based): core's exponential {@link backoffDelay}
 * from `initialMs` capped at `maxMs`, with equal jitter (a wait of d becomes d/2..d) so that many
 * clients cut off by one outage do not return in step. One rule for every adapter.
 */
export function reconnectDelay(
  attempt: number,
  backoff: ReconnectBackoff = DEFAULT_RECONNECT_BACKOFF,
  random: () => number = Math.random,
): number {
  const initialMs = backoff.initialMs ?? DEFAULT_RECONNECT_BACKOFF.initialMs
  const maxMs = Math.max(initialMs, backoff.maxMs ?? DEFAULT_RECONNECT_BACKOFF.maxMs)
  return backoffDelay(
    { type: 'exponential', delayMs: initialMs, maxDelayMs: maxMs, jitter: true },
    Math.max(1, attempt),
    random,
  )
}
