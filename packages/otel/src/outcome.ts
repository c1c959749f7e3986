import { type DeadLetterReason, type RunInfo, ShutdownError } from '@errand/core'
import type { AttemptOutcome } from './attributes.js'

/** What the worker does with an attempt that threw `err`. */
export interface FailedAttempt {
  readonly outcome: Exclude<AttemptOutcome, 'succeeded'>
  readonly reason?: DeadLetterReason
}

/**
 * The worker's rules for a thrown error, read from the error and `info` (core's `wrapRun` sees the
 * handler, not the settlement): a shutdown returns the message, a cancellation and a
 * `RejectTaskError` (also an output that fails its schema) dead-letter it, anything else is
 * retried while `attempt < maxAttempts` and dead-lettered as `exhausted` after. One case it cannot
 * see: an output JSON cannot carry is refused by the worker after the attempt (`rejected`).
 */
export function classifyFailure(err: unknown, info: RunInfo): FailedAttempt {
  if (err instanceof ShutdownError) return { outcome: 'returned' }
  const code = (err as { code?: unknown } | null)?.code
  if (code === 'ERR_CANCELED') return { outcome: 'dead-lettered', reason: 'canceled' }
  if (code === 'ERR_REJECTED') return { outcome: 'dead-lettered', reason: 'rejected' }
  if (info.attempt < info.maxAttempts) return { outcome: 'retried' }
  return { outcome: 'dead-lettered', reason: 'exhausted' }
}
