import { ClosedError } from '../errors.js'
import type { BackendEventSubscription, EventFilter, TaskEvent } from '../events.js'
import type { FlowControlStore } from '../flow-control.js'
import { flowChecks } from '../kit/flow-checks.js'
import { resultChecks } from '../kit/result-checks.js'
import {
  type GroupProgress,
  type MemberOutcome,
  type ResultBackend,
  type ResultBackendCapabilities,
  resultBackendCapabilities,
  type SetStateOptions,
  type TaskRecord,
  type TaskState,
} from '../result-backend.js'
import type { MemoryStore } from './memory-store.js'
import { type MemoryResultBackendOptions, parseBackendOptions, selectStore } from './options.js'

const ADAPTER = { adapter: 'memory' } as const

/**
 * A {@link ResultBackend} in this process. `waitFor` is pushed (a write of a final state wakes
 * its waiters at once, also across backends on one store); records, group counters and claims
 * expire `ttlMs` after their last write. Flow control (rate limits, concurrency slots, paused
 * queues, `putValue`) is shared by every backend on the store. Values are stored as JSON, so
 * what comes back is what a real store would return (no `undefined` fields, no class instances).
 *
 * Defaults: the process-wide store `default` (`memory://<name>` or `name` picks another).
 *
 * @example
 * ```ts
 * const backend = new MemoryResultBackend({ url: 'memory://' })
 * await backend.connect()
 * await backend.setState({ id: 't1', state: 'SUCCESS', result: 42 }, { ttlMs: 60_000 })
 * ```
 */
export class MemoryResultBackend implements ResultBackend, FlowControlStore {
  /** Adapter name in errors and logs. */
  readonly name = 'memory'
  /** What this instance does natively (see the class summary for the defaults). */
  readonly capabilities: ResultBackendCapabilities = resultBackendCapabilities({
    pushWait: true,
    events: true,
    flowControl: true,
  })
  /** The store this backend works on. */
  readonly store: MemoryStore
  readonly #pending = new Set<(err: Error) => void>()
  readonly #subscriptions = new Set<BackendEventSubscription>()
  #closed = false

  /** Throws `InvalidOptionError` naming the field when `options` are invalid. */
  constructor(options: MemoryResultBackendOptions = {}) {
    this.store = selectStore(parseBackendOptions(options))
    this.store.attach()
  }

  /** Nothing to connect; rejects with `ERR_CLOSED` after `close()`. */
  async connect(): Promise<void> {
    this.#assertOpen()
  }

  /** Reject this backend's pending `waitFor` calls with `ERR_CLOSED`. Calling it again does nothing. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const error = new ClosedError('the result backend closed while waiting', ADAPTER)
    for (const reject of [...this.#pending]) reject(error)
    for (const subscription of this.#subscriptions) await subscription.close()
    this.#subscriptions.clear()
    this.store.detach()
  }

  /** Write `record` unless a CANCELED one is stored; returns the state stored after the call. */
  async setState(record: TaskRecord, options: SetStateOptions): Promise<TaskState> {
    this.#assertOpen()
    const ttlMs = resultChecks.setState(record, options)
    return this.store.results.setState(record, ttlMs)
  }

  /** The record of `id`, if present and not expired. */
  async getState(id: string): Promise<TaskRecord | undefined> {
    this.#assertOpen()
    resultChecks.id('getState', 'id', id)
    return this.store.results.getState(id)
  }

  /** Records of `ids` in the order asked, `undefined` where unknown. */
  async getStates(ids: readonly string[]): Promise<(TaskRecord | undefined)[]> {
    this.#assertOpen()
    resultChecks.ids('getStates', ids)
    return ids.map((id) => this.store.results.getState(id))
  }

  /**
   * The record once its state is final (at once if it already is). Rejects with the signal's
   * reason when it aborts, and with `ERR_CLOSED` when this backend closes first.
   */
  waitFor(id: string, options: { signal: AbortSignal }): Promise<TaskRecord> {
    return new Promise<TaskRecord>((resolve, reject) => {
      this.#assertOpen()
      resultChecks.id('waitFor', 'id', id)
      const signal = options?.signal
      signal?.throwIfAborted()
      const cleanup = () => {
        if (typeof subscription === 'function') subscription()
        signal?.removeEventListener('abort', onAbort)
        this.#pending.delete(fail)
      }
      const fail = (err: unknown) => {
        cleanup()
        reject(err)
      }
      const onAbort = () => fail(signal?.reason)
      const subscription = this.store.results.onFinal(id, (json) => {
        cleanup()
        resolve(JSON.parse(json) as TaskRecord)
      })
      if (typeof subscription === 'string') {
        resolve(JSON.parse(subscription) as TaskRecord)
        return
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#pending.add(fail)
    })
  }

  /** Record member `index` of group `groupId` and report progress (see `ResultBackend`). */
  async completeGroupMember(
    groupId: string,
    index: number,
    size: number,
    outcome: MemberOutcome,
    options: SetStateOptions,
  ): Promise<GroupProgress> {
    this.#assertOpen()
    const ttlMs = resultChecks.groupMember(groupId, index, size, outcome, options)
    return this.store.results.completeGroupMember(groupId, index, size, outcome, ttlMs)
  }

  /** Set `key` to `value` unless present; true when this call set it. Expires after `ttlMs`. */
  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    this.#assertOpen()
    return this.store.results.setIfAbsent(key, value, resultChecks.setIfAbsent(key, value, ttlMs))
  }

  /** The value under `key`, if present and not expired. */
  async getValue(key: string): Promise<string | undefined> {
    this.#assertOpen()
    resultChecks.id('getValue', 'key', key)
    return this.store.results.getValue(key)
  }

  /** Store events in the store's per-queue ring (last 1000) and call its live listeners. */
  async publishEvents(events: readonly TaskEvent[]): Promise<void> {
    this.#assertOpen()
    resultChecks.events(events)
    return this.store.events.publishEvents(events)
  }

  /** Live events published on this store from now on (synchronous delivery, in order). */
  async subscribeEvents(
    filter: EventFilter,
    onEvent: (event: TaskEvent) => void,
  ): Promise<BackendEventSubscription> {
    this.#assertOpen()
    const subscription = await this.store.events.subscribeEvents(filter ?? {}, onEvent)
    this.#subscriptions.add(subscription)
    return {
      close: async () => {
        this.#subscriptions.delete(subscription)
        await subscription.close()
      },
    }
  }

  /** The last `limit` events of `queue` on this store, oldest first. */
  async recentEvents(queue: string, limit: number): Promise<TaskEvent[]> {
    this.#assertOpen()
    resultChecks.recentEvents(queue, limit)
    return this.store.events.recentEvents(queue, limit)
  }

  /** Sliding-window rate limit: 0 when a start was recorded, else the ms to wait (see `FlowControlStore`). */
  async takeRate(key: string, max: number, perMs: number): Promise<number> {
    this.#assertOpen()
    return this.store.flow.takeRate(key, max, flowChecks.takeRate(key, max, perMs))
  }

  /** Hold (or renew) one of `max` slots of `key` for `holder` for `leaseMs`; false when all are taken. */
  async acquireSlot(key: string, holder: string, max: number, leaseMs: number): Promise<boolean> {
    this.#assertOpen()
    const lease = flowChecks.acquireSlot(key, holder, max, leaseMs)
    return this.store.flow.acquireSlot(key, holder, max, lease)
  }

  /** Give back `holder`'s slot of `key` (nothing when it holds none). */
  async releaseSlot(key: string, holder: string): Promise<void> {
    this.#assertOpen()
    flowChecks.releaseSlot(key, holder)
    this.store.flow.releaseSlot(key, holder)
  }

  /** Pause (`true`) or resume (`false`) `queue` for every backend on the store. */
  async setPaused(queue: string, paused: boolean): Promise<void> {
    this.#assertOpen()
    flowChecks.setPaused(queue, paused)
    this.store.flow.setPaused(queue, paused)
  }

  /** Every paused queue on the store, sorted. */
  async pausedQueues(): Promise<string[]> {
    this.#assertOpen()
    return this.store.flow.pausedQueues()
  }

  /** Set `key` to `value`, replacing what `setIfAbsent` or `putValue` stored; expires after `ttlMs`. */
  async putValue(key: string, value: string, ttlMs: number): Promise<void> {
    this.#assertOpen()
    this.store.results.putValue(key, value, flowChecks.putValue(key, value, ttlMs))
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('the result backend is closed', ADAPTER)
  }
}
