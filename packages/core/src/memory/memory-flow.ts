import { performance } from 'node:perf_hooks'

/** The starts recorded for one rate key, oldest first, and the window they were taken with. */
interface RateLog {
  readonly starts: number[]
  perMs: number
}

/**
 * The flow-control half of a {@link MemoryStore}: sliding-window rate logs, group concurrency
 * slots with leases, and paused queues (`putValue` lives with the other values in
 * `MemoryResults`). Every method is one synchronous step, so calls from several backends on one
 * store are atomic with respect to each other. Arguments are validated by the backend.
 *
 * Times come from a monotonic clock (`performance.now()`), so a wall-clock jump neither frees
 * nor blocks anything. State that no longer matters (empty windows, expired leases) is dropped
 * when its key is next used, and by a sweep of every key that runs once per as many calls as
 * there are keys (so the cost stays constant per call and no timer is needed).
 */
export class MemoryFlow {
  readonly #rates = new Map<string, RateLog>()
  /** key → holder → lease end. */
  readonly #slots = new Map<string, Map<string, number>>()
  readonly #paused = new Set<string>()
  #callsSinceSweep = 0

  /**
   * Record one start for `key` unless `max` starts lie within the last `perMs`. Returns 0 when
   * recorded; otherwise the ms (at least 1) until the start that blocks this one leaves the window.
   */
  takeRate(key: string, max: number, perMs: number): number {
    this.#maybeSweep()
    const now = performance.now()
    let log = this.#rates.get(key)
    if (log === undefined) {
      log = { starts: [], perMs }
      this.#rates.set(key, log)
    }
    log.perMs = perMs
    pruneStarts(log.starts, now - perMs)
    const { starts } = log
    if (starts.length >= max) {
      // With `max` changed between calls, more than `max` starts may be in the window: the one
      // that must leave before a start fits is the `max`-th newest.
      const blocking = starts[starts.length - max]!
      return Math.max(1, Math.ceil(blocking + perMs - now))
    }
    starts.push(now)
    return 0
  }

  /**
   * Hold one of `max` slots of `key` for `holder` until `leaseMs` from now. True when `holder`
   * holds a slot after the call (taken now, or held already and renewed); false when `max` live
   * leases of other holders fill the key.
   */
  acquireSlot(key: string, holder: string, max: number, leaseMs: number): boolean {
    this.#maybeSweep()
    const now = performance.now()
    let holders = this.#slots.get(key)
    if (holders === undefined) {
      holders = new Map()
      this.#slots.set(key, holders)
    }
    pruneLeases(holders, now)
    if (!holders.has(holder) && holders.size >= max) return false
    holders.set(holder, now + leaseMs)
    return true
  }

  /** Give back `holder`'s slot of `key`; nothing when it holds none. */
  releaseSlot(key: string, holder: string): void {
    const holders = this.#slots.get(key)
    if (holders === undefined) return
    holders.delete(holder)
    if (holders.size === 0) this.#slots.delete(key)
  }

  /** Pause (`true`) or resume (`false`) `queue`. */
  setPaused(queue: string, paused: boolean): void {
    if (paused) this.#paused.add(queue)
    else this.#paused.delete(queue)
  }

  /** Every paused queue, sorted (UTF-16 code unit order). */
  pausedQueues(): string[] {
    return [...this.#paused].sort()
  }

  /** Drop every empty window and expired lease once per as many calls as there are keys. */
  #maybeSweep(): void {
    if (++this.#callsSinceSweep < Math.max(1024, this.#rates.size + this.#slots.size)) return
    this.#callsSinceSweep = 0
    const now = performance.now()
    for (const [key, log] of this.#rates) {
      pruneStarts(log.starts, now - log.perMs)
      if (log.starts.length === 0) this.#rates.delete(key)
    }
    for (const [key, holders] of this.#slots) {
      pruneLeases(holders, now)
      if (holders.size === 0) this.#slots.delete(key)
    }
  }
}

/** Remove the starts at or before `cutoff` (they left the window) from the front of `starts`. */
function pruneStarts(starts: number[], cutoff: number): void {
  let gone = 0
  while (gone < starts.length && starts[gone]! <= cutoff) gone++
  if (gone > 0) starts.splice(0, gone)
}

/** Remove the holders whose lease ended at or before `now`. */
function pruneLeases(holders: Map<string, number>, now: number): void {
  for (const [holder, until] of holders) if (until <= now) holders.delete(holder)
}
