import type { BackendEventSubscription, EventFilter, TaskEvent } from '../events.js'
import type { FlowControlStore } from '../flow-control.js'
import { flowChecks } from '../kit/flow-checks.js'
import { Lifecycle } from '../kit/lifecycle.js'
import { resultChecks } from '../kit/result-checks.js'
import { WaitRegistry } from '../kit/wait-registry.js'
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
  readonly #subscriptions = new Set<BackendEventSubscription>()
  /** Connect once, close once, `ERR_CLOSED` after close (core's rules). */
  readonly #lifecycle = new Lifecycle('memory', 'result backend')
  /** Pending `waitFor` calls, woken by the store when a record of theirs turns final. */
  readonly #waiters: WaitRegistry<TaskRecord> = new WaitRegistry({
    watch: (id) => this.#watch(id),
    unwatch: (id) => {
      this.#unsubscribe.get(id)?.()
      this.#unsubscribe.delete(id)
    },
  })
  readonly #unsubscribe = new Map<string, () => void>()

  /** Throws `InvalidOptionError` naming the field when `options` are invalid. */
  constructor(options: MemoryResultBackendOptions = {}) {
    this.store = selectStore(parseBackendOptions(options))
    this.store.attach()
  }

  /** Nothing to connect; rejects with `ERR_CLOSED` after `close()`. */
  connect(): Promise<void> {
    return this.#lifecycle.connect(async () => undefined)
  }

  /** Reject this backend's pending `waitFor` calls with `ERR_CLOSED`. Calling it again does nothing. */
  close(): Promise<void> {
    return this.#lifecycle.close(async () => {
      this.#waiters.closeAll(this.#lifecycle.closedError('waitFor'))
      for (const subscription of this.#subscriptions) await subscription.close()
      this.#subscriptions.clear()
      this.store.detach()
    })
  }

  /** Write `record` unless a CANCELED one is stored; returns the state stored after the call. */
  async setState(record: TaskRecord, options: SetStateOptions): Promise<TaskState> {
    this.#assertOpen('setState')
    const ttlMs = resultChecks.setState(record, options)
    return this.store.results.setState(record, ttlMs)
  }

  /** The record of `id`, if present and not expired. */
  async getState(id: string): Promise<TaskRecord | undefined> {
    this.#assertOpen('getState')
    resultChecks.id('getState', 'id', id)
    return this.store.results.getState(id)
  }

  /** Records of `ids` in the order asked, `undefined` where unknown. */
  async getStates(ids: readonly string[]): Promise<(TaskRecord | undefined)[]> {
    this.#assertOpen('getStates')
    resultChecks.ids('getStates', ids)
    return ids.map((id) => this.store.results.getState(id))
  }

  /**
   * The record once its state is final (at once if it already is). Rejects with the signal's
   * reason when it aborts, and with `ERR_CLOSED` when this backend closes first.
   */
  async waitFor(id: string, options: { signal: AbortSignal }): Promise<TaskRecord> {
    this.#assertOpen('waitFor')
    resultChecks.id('waitFor', 'id', id)
    return this.#waiters.wait(id, options?.signal)
  }

  /** The first waiter of `id`: settle at once if its record is final, else subscribe to it. */
  #watch(id: string): void {
    const subscription = this.store.results.onFinal(id, (json) => {
      this.#waiters.resolve(id, JSON.parse(json) as TaskRecord)
    })
    if (typeof subscription === 'string') this.#waiters.resolve(id, JSON.parse(subscription) as TaskRecord)
    else this.#unsubscribe.set(id, subscription)
  }

  /** Record member `index` of group `groupId` and report progress (see `ResultBackend`). */
  async completeGroupMember(
    groupId: string,
    index: number,
    size: number,
    outcome: MemberOutcome,
    options: SetStateOptions,
  ): Promise<GroupProgress> {
    this.#assertOpen('completeGroupMember')
    const ttlMs = resultChecks.groupMember(groupId, index, size, outcome, options)
    return this.store.results.completeGroupMember(groupId, index, size, outcome, ttlMs)
  }

  /** Set `key` to `value` unless present; true when this call set it. Expires after `ttlMs`. */
  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    this.#assertOpen('setIfAbsent')
    return this.store.results.setIfAbsent(key, value, resultChecks.setIfAbsent(key, value, ttlMs))
  }

  /** The value under `key`, if present and not expired. */
  async getValue(key: string): Promise<string | undefined> {
    this.#assertOpen('getValue')
    resultChecks.id('getValue', 'key', key)
    return this.store.results.getValue(key)
  }

  /** Store events in the store's per-queue ring (last 1000) and call its live listeners. */
  async publishEvents(events: readonly TaskEvent[]): Promise<void> {
    this.#assertOpen('publishEvents')
    resultChecks.events(events)
    return this.store.events.publishEvents(events)
  }

  /** Live events published on this store from now on (synchronous delivery, in order). */
  async subscribeEvents(
    filter: EventFilter,
    onEvent: (event: TaskEvent) => void,
  ): Promise<BackendEventSubscription> {
    this.#assertOpen('subscribeEvents')
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
    this.#assertOpen('recentEvents')
    resultChecks.recentEvents(queue, limit)
    return this.store.events.recentEvents(queue, limit)
  }

  /** Sliding-window rate limit: 0 when a start was recorded, else the ms to wait (see `FlowControlStore`). */
  async takeRate(key: string, max: number, perMs: number): Promise<number> {
    this.#assertOpen('takeRate')
    return this.store.flow.takeRate(key, max, flowChecks.takeRate(key, max, perMs))
  }

  /** Hold (or renew) one of `max` slots of `key` for `holder` for `leaseMs`; false when all are taken. */
  async acquireSlot(key: string, holder: string, max: number, leaseMs: number): Promise<boolean> {
    this.#assertOpen('acquireSlot')
    const lease = flowChecks.acquireSlot(key, holder, max, leaseMs)
    return this.store.flow.acquireSlot(key, holder, max, lease)
  }

  /** Give back `holder`'s slot of `key` (nothing when it holds none). */
  async releaseSlot(key: string, holder: string): Promise<void> {
    this.#assertOpen('releaseSlot')
    flowChecks.releaseSlot(key, holder)
    this.store.flow.releaseSlot(key, holder)
  }

  /** Pause (`true`) or resume (`false`) `queue` for every backend on the store. */
  async setPaused(queue: string, paused: boolean): Promise<void> {
    this.#assertOpen('setPaused')
    flowChecks.setPaused(queue, paused)
    this.store.flow.setPaused(queue, paused)
  }

  /** Every paused queue on the store, sorted. */
  async pausedQueues(): Promise<string[]> {
    this.#assertOpen('pausedQueues')
    return this.store.flow.pausedQueues()
  }

  /** Set `key` to `value`, replacing what `setIfAbsent` or `putValue` stored; expires after `ttlMs`. */
  async putValue(key: string, value: string, ttlMs: number): Promise<void> {
    this.#assertOpen('putValue')
    this.store.results.putValue(key, value, flowChecks.putValue(key, value, ttlMs))
  }

  #assertOpen(what: string): void {
    this.#lifecycle.assertOpen(what)
  }
}
