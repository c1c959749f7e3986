/**
 * Flow control shared by every worker process: rate limits, group concurrency slots, paused
 * queues and the overwrite that debounced sends need. A result backend offers it by setting
 * `capabilities.flowControl` and implementing {@link FlowControlStore}; core reaches it through
 * the app's backend, so any broker (AMQP and SQS included) gets it from a backend that has it.
 *
 * Every method is one atomic step in the store (a Lua script on Redis, one statement or one short
 * transaction on PostgreSQL and SQLite, one synchronous step in memory). Times are the store's
 * clock where it has one (Redis `TIME`, PostgreSQL `clock_timestamp()`), so processes with
 * skewed clocks agree. Keys are opaque strings made by core (at most 512 characters); a store
 * keeps them apart from its other keys. Writes are as durable as the backend's other writes; a
 * store may make them less so (rate starts and leases lost in a crash only let a limit restart).
 */
export interface FlowControlStore {
  /**
   * Sliding-window rate limit: record one start for `key` unless `max` starts were recorded in
   * the last `perMs`. Returns 0 when the start was recorded; otherwise how many ms until the
   * start that blocks (the `max`-th most recent) leaves the window, between 1 and `perMs`, and
   * nothing is recorded. In any window of `perMs`, at most `max` starts are ever recorded for a
   * key. State for a key expires once its window is empty. Core uses one `perMs` per key (a key
   * names its task or queue); a store may forget starts early if a key's `perMs` grows.
   */
  takeRate(key: string, max: number, perMs: number): Promise<number>
  /**
   * Group concurrency: hold one of the `max` slots of `key` for `holder` until `leaseMs` from
   * now. A slot whose lease ran out is free again (a crashed worker's slot comes back by itself).
   * Returns true when `holder` holds a slot after the call: taken now, or held already (then its
   * lease is renewed: this is also how a running task keeps its slot). False when all `max`
   * slots are held by others.
   */
  acquireSlot(key: string, holder: string, max: number, leaseMs: number): Promise<boolean>
  /** Give back `holder`'s slot of `key` (nothing when it holds none). */
  releaseSlot(key: string, holder: string): Promise<void>
  /** Pause (`true`) or resume (`false`) `queue` for every worker using this store. */
  setPaused(queue: string, paused: boolean): Promise<void>
  /** Every paused queue, sorted in JavaScript string order. */
  pausedQueues(): Promise<string[]>
  /**
   * Set `key` to `value`, replacing what is there, expiring after `ttlMs`. Shares its key space
   * with `setIfAbsent` / `getValue` (a debounced send overwrites its claim).
   */
  putValue(key: string, value: string, ttlMs: number): Promise<void>
}

/** True when `backend` says it has flow control and implements every method of it. */
export function hasFlowControl<B extends { readonly capabilities: { readonly flowControl?: boolean } }>(
  backend: B | undefined,
): backend is B & FlowControlStore {
  if (backend === undefined || backend.capabilities.flowControl !== true) return false
  const b = backend as Partial<FlowControlStore>
  return (
    typeof b.takeRate === 'function' &&
    typeof b.acquireSlot === 'function' &&
    typeof b.releaseSlot === 'function' &&
    typeof b.setPaused === 'function' &&
    typeof b.pausedQueues === 'function' &&
    typeof b.putValue === 'function'
  )
}

/** Largest key a flow-control method accepts. */
export const MAX_FLOW_KEY_LENGTH = 512
