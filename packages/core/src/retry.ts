import { z } from 'zod'

/** How long to wait between attempts. */
export const backoffSchema = z
  .object({
    type: z.enum(['fixed', 'exponential', 'fibonacci']),
    /** Base delay: the fixed delay, or the first step of the growing ones. */
    delayMs: z.number().int().min(0),
    /** Cap on any one delay. Default: no cap. */
    maxDelayMs: z.number().int().min(0).optional(),
    /** Spread delays over [delay/2, delay] ("equal jitter") so retries do not stampede. Default false. */
    jitter: z.boolean().optional(),
  })
  .strict()

/** A task's retry policy. */
export const retryPolicySchema = z
  .object({
    /** Total runs allowed, the first included (1 = never retry). Default 1. */
    attempts: z.number().int().min(1),
    /** Default: fixed 1000 ms. */
    backoff: backoffSchema.optional(),
  })
  .strict()

/** @see retryPolicySchema */
export type RetryPolicy = z.input<typeof retryPolicySchema>
/** @see backoffSchema */
export type Backoff = z.input<typeof backoffSchema>

const DEFAULT_BACKOFF: Backoff = { type: 'fixed', delayMs: 1000 }

function fibonacci(n: number): number {
  let a = 1
  let b = 1
  for (let i = 2; i < n; i++) [a, b] = [b, a + b]
  return b
}

/**
 * Delay before the run that follows failed run number `attempt` (1-based).
 * fixed: d; exponential: d·2^(attempt-1); fibonacci: d·fib(attempt) (1, 1, 2, 3, 5…).
 */
export function backoffDelay(
  backoff: Backoff | undefined,
  attempt: number,
  random: () => number = Math.random,
): number {
  const b = backoff ?? DEFAULT_BACKOFF
  let delay: number
  switch (b.type) {
    case 'fixed':
      delay = b.delayMs
      break
    case 'exponential':
      delay = b.delayMs * 2 ** Math.min(attempt - 1, 52)
      break
    case 'fibonacci':
      delay = b.delayMs * fibonacci(Math.min(attempt, 78))
      break
  }
  if (b.maxDelayMs !== undefined) delay = Math.min(delay, b.maxDelayMs)
  if (b.jitter) delay = delay / 2 + random() * (delay / 2)
  return Math.round(Math.min(delay, Number.MAX_SAFE_INTEGER))
}
