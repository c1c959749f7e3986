import { MAX_FLOW_KEY_LENGTH } from '../flow-control.js'
import { argumentError, checkCount, checkMs, checkName } from './argument-text.js'

/**
 * The argument checks of a {@link FlowControlStore}'s methods, the same on every store. Keys,
 * holders and queue names are non-empty strings of at most {@link MAX_FLOW_KEY_LENGTH}
 * characters; `max` an integer >= 1; windows, leases and TTLs finite numbers of ms > 0, returned
 * rounded up to whole ms. A wrong argument is a `TypeError` naming the method and the argument
 * (`takeRate: perMs must be …, got …`). A store with stricter limits (bytes, NUL characters)
 * checks those after these.
 *
 * @example
 * ```ts
 * async takeRate(key: string, max: number, perMs: number): Promise<number> {
 *   this.lifecycle.assertOpen('takeRate')
 *   const window = flowChecks.takeRate(key, max, perMs)
 *   …
 * }
 * ```
 */
export const flowChecks = {
  /** A flow key, holder or queue name. */
  name(method: string, what: string, value: unknown): void {
    checkName(method, what, value, MAX_FLOW_KEY_LENGTH)
  },

  /** `takeRate`'s arguments; returns the window `perMs` in whole ms. */
  takeRate(key: string, max: number, perMs: number): number {
    flowChecks.name('takeRate', 'key', key)
    checkCount('takeRate', 'max', max)
    return checkMs('takeRate', 'perMs', perMs)
  },

  /** `acquireSlot`'s arguments; returns the lease `leaseMs` in whole ms. */
  acquireSlot(key: string, holder: string, max: number, leaseMs: number): number {
    flowChecks.releaseSlot(key, holder, 'acquireSlot')
    checkCount('acquireSlot', 'max', max)
    return checkMs('acquireSlot', 'leaseMs', leaseMs)
  },

  /** `releaseSlot`'s key and holder (`method` names the caller in errors). */
  releaseSlot(key: string, holder: string, method = 'releaseSlot'): void {
    flowChecks.name(method, 'key', key)
    flowChecks.name(method, 'holder', holder)
  },

  /** `setPaused`'s queue and a boolean. */
  setPaused(queue: string, paused: boolean): void {
    flowChecks.name('setPaused', 'queue', queue)
    if (typeof paused !== 'boolean') throw argumentError('setPaused', 'paused', 'a boolean', paused)
  },

  /** `putValue`'s key, a string value and the TTL; returns the TTL in whole ms. */
  putValue(key: string, value: string, ttlMs: number): number {
    flowChecks.name('putValue', 'key', key)
    if (typeof value !== 'string') throw argumentError('putValue', 'value', 'a string', value)
    return checkMs('putValue', 'ttlMs', ttlMs)
  },
} as const
