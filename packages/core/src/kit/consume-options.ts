import type { ConsumeOptions } from '../broker.js'
import { InvalidOptionError } from '../errors.js'

/** Highest prefetch a consumer may ask for. */
export const MAX_PREFETCH = 100_000

/** {@link ConsumeOptions} after {@link checkConsumeOptions}. */
export interface CheckedConsumeOptions {
  /** An integer from 1 to {@link MAX_PREFETCH}. */
  readonly prefetch: number
  /** A whole number of ms > 0, or undefined (the adapter's default lease). */
  readonly leaseMs: number | undefined
}

/**
 * Check `consume` options the same way on every adapter: `prefetch` an integer from 1 to
 * {@link MAX_PREFETCH}, `leaseMs` (when given) a finite number > 0, rounded up to whole ms.
 * A wrong value is `ERR_INVALID_OPTION` naming the option.
 */
export function checkConsumeOptions(options: ConsumeOptions, adapter: string): CheckedConsumeOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError('options', 'consume needs an options object with a prefetch', { adapter })
  }
  const { prefetch, leaseMs } = options
  if (!Number.isInteger(prefetch) || prefetch < 1 || prefetch > MAX_PREFETCH) {
    throw new InvalidOptionError(
      'prefetch',
      `expected an integer from 1 to ${MAX_PREFETCH}, got ${String(prefetch)}`,
      {
        adapter,
      },
    )
  }
  if (leaseMs !== undefined && (typeof leaseMs !== 'number' || !Number.isFinite(leaseMs) || leaseMs <= 0)) {
    throw new InvalidOptionError('leaseMs', `expected a number of ms > 0, got ${String(leaseMs)}`, {
      adapter,
    })
  }
  return { prefetch, leaseMs: leaseMs === undefined ? undefined : Math.ceil(leaseMs) }
}
