import {
  type BackendEventSubscription,
  type EventFilter,
  type EventStore,
  ExpirySweep,
  type FlowControlStore,
  type GroupProgress,
  Lifecycle,
  type MemberOutcome,
  type ResultBackend,
  type ResultBackendCapabilities,
  resultBackendCapabilities,
  resultChecks,
  type SetStateOptions,
  type TaskEvent,
  type TaskRecord,
  type TaskState,
} from '@errand/core'
import { SqliteConnection, type SyncLevel } from './connection.js'
import { SqliteEvents } from './events.js'
import { SqliteFlow } from './flow.js'
import { FlowSql } from './flow-sql.js'
import {
  ADAPTER,
  backendOptionsSchema,
  DEFAULT_EVENT_RETENTION,
  parseOptions,
  type ResolvedConnection,
  resolveConnection,
  type SqliteResultBackendOptions,
} from './options.js'
import { ResultsSql } from './results-sql.js'
import { StateWrites } from './state-writes.js'
import { Waiters } from './waiters.js'

const CLEANUP_BATCH = 1000

/**
 * A ResultBackend on one SQLite file (the broker's file or another): records, group counters
 * and claims in `errand_*` tables with an expiry that reads filter on and a sweep deletes.
 * `setState` calls of one event-loop turn share one transaction. `waitFor` is woken at once by a
 * write in this process, and within a few ms by another process's (see `pollIntervalMs`), so
 * `capabilities.pushWait` is false.
 *
 * Task events (`capabilities.events`) live in `errand_events`, trimmed per queue to
 * `eventRetention`; live subscribers get this process's events at once and other processes'
 * within the same polling delay as `waitFor` (see `SqliteEvents`).
 *
 * Flow control (`capabilities.flowControl`: rate limits, group concurrency slots, paused
 * queues, `putValue`) lives in `errand_rate`, `errand_slots`, `errand_paused` and `errand_kv`,
 * one short `BEGIN IMMEDIATE` transaction per call, so it holds across every process on the
 * file; times are the caller's `Date.now()` (processes sharing a file share a machine).
 *
 * @example
 * ```ts
 * const backend = new SqliteResultBackend({ url: 'sqlite://./errand.db' })
 * await backend.connect()
 * ```
 */
export class SqliteResultBackend implements ResultBackend, EventStore, FlowControlStore {
  readonly name = ADAPTER
  readonly capabilities: ResultBackendCapabilities = resultBackendCapabilities({
    pushWait: false,
    events: true,
    flowControl: true,
  })
  readonly #resolved: ResolvedConnection
  readonly #eventRetention: number
  readonly #sync: SyncLevel
  #connection: SqliteConnection | undefined
  #sql: ResultsSql | undefined
  #flowSql: FlowSql | undefined
  #waiters: Waiters | undefined
  #events: SqliteEvents | undefined
  readonly #lifecycle = new Lifecycle(ADAPTER, 'result backend')
  #stateWrites: StateWrites | undefined
  /** Deletes expired rows after writes, once per `cleanupIntervalMs`. */
  readonly #sweeper: ExpirySweep
  readonly #flow = new SqliteFlow({
    assertOpen: (what) => this.#assertOpen(what),
    write: async (fn) => {
      await this.connect()
      const value = await this.#connection!.write(
        () => fn(this.#flowSql!, Date.now()),
        this.#resolved.busyTimeoutMs,
        this.#sync,
      )
      this.#sweeper.afterWrite()
      return value
    },
    read: async (fn) => {
      await this.connect()
      return this.#connection!.read(() => fn(this.#flowSql!))
    },
  })

  /** Throws `ERR_INVALID_OPTION` naming the field when `options` are invalid. Does not open the file. */
  constructor(options: SqliteResultBackendOptions) {
    const parsed = parseOptions(backendOptionsSchema, options)
    this.#resolved = resolveConnection(parsed)
    this.#sweeper = new ExpirySweep({
      intervalMs: parsed.cleanupIntervalMs ?? 60_000,
      batch: CLEANUP_BATCH,
      sweep: () => this.cleanup(),
      onError: (err) =>
        this.#resolved.logger.warn(`cleanup of expired rows failed: ${(err as Error).message}`),
    })
    this.#eventRetention = parsed.eventRetention ?? DEFAULT_EVENT_RETENTION
    this.#sync = this.#resolved.durability === 'full' ? 'FULL' : 'NORMAL'
  }

  /** The database file (absolute), or `:memory:`. */
  get path(): string {
    return this.#resolved.path
  }

  /** Opens (shared per path in this process) and migrates the file. Idempotent. */
  connect(): Promise<void> {
    return this.#lifecycle.connect(() => this.#open())
  }

  /** Rejects pending waits with `ERR_CLOSED`, finishes queued writes, releases the file. */
  close(): Promise<void> {
    this.#sweeper.stop()
    return this.#lifecycle.close(async () => {
      this.#waiters?.closeAll(this.#lifecycle.closedError('waitFor'))
      await this.#stateWrites?.drained()
      await this.#events?.close()
      this.#connection?.release()
    })
  }

  async #open(): Promise<void> {
    const connection = await SqliteConnection.acquire(this.#resolved.path, this.#resolved.busyTimeoutMs)
    this.#connection = connection
    const sql = new ResultsSql(connection)
    this.#sql = sql
    this.#stateWrites = new StateWrites(connection, sql, {
      busyTimeoutMs: this.#resolved.busyTimeoutMs,
      sync: this.#sync,
      afterFlush: () => this.#sweeper.afterWrite(),
    })
    this.#flowSql = new FlowSql(connection)
    this.#waiters = new Waiters(
      connection.feed,
      (id) => connection.read(() => sql.getState(id, Date.now())),
      this.#resolved.pollIntervalMs,
    )
    this.#events = new SqliteEvents(connection, {
      retention: this.#eventRetention,
      busyTimeoutMs: this.#resolved.busyTimeoutMs,
      pollIntervalMs: this.#resolved.pollIntervalMs,
      logger: this.#resolved.logger,
    })
  }

  /** Writes `record` unless a CANCELED one is stored; the state stored after the call. */
  async setState(record: TaskRecord, options: SetStateOptions): Promise<TaskState> {
    this.#assertOpen('setState')
    const ttlMs = resultChecks.setState(record, options)
    const json = JSON.stringify(record)
    await this.connect()
    return this.#stateWrites!.add(record, json, ttlMs)
  }

  /** The record of `id`, if present and not expired. */
  async getState(id: string): Promise<TaskRecord | undefined> {
    this.#assertOpen('getState')
    resultChecks.id('getState', 'id', id)
    await this.connect()
    return this.#connection!.read(() => this.#sql!.getState(id, Date.now()))
  }

  /** Records of `ids` in the order asked (`undefined` where unknown), read in one synchronous pass. */
  async getStates(ids: readonly string[]): Promise<(TaskRecord | undefined)[]> {
    this.#assertOpen('getStates')
    resultChecks.ids('getStates', ids)
    await this.connect()
    const now = Date.now()
    return this.#connection!.read(() => ids.map((id) => this.#sql!.getState(id, now)))
  }

  /** The record once its state is final; rejects with the signal's reason, or `ERR_CLOSED`. */
  async waitFor(id: string, options: { signal: AbortSignal }): Promise<TaskRecord> {
    this.#assertOpen('waitFor')
    resultChecks.id('waitFor', 'id', id)
    const signal = options?.signal
    signal?.throwIfAborted()
    await this.connect()
    return this.#waiters!.wait(id, signal)
  }

  /** Records member `index` of group `groupId` and counts distinct members, in one transaction. */
  async completeGroupMember(
    groupId: string,
    index: number,
    size: number,
    outcome: MemberOutcome,
    options: SetStateOptions,
  ): Promise<GroupProgress> {
    this.#assertOpen('completeGroupMember')
    const ttlMs = resultChecks.groupMember(groupId, index, size, outcome, options)
    await this.connect()
    const progress = await this.#connection!.write(
      () => this.#sql!.completeMember(groupId, index, size, outcome, ttlMs, Date.now()),
      this.#resolved.busyTimeoutMs,
      this.#sync,
    )
    this.#sweeper.afterWrite()
    return progress
  }

  /** Sets `key` to `value` unless a live value is there; true when this call set it. */
  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    this.#assertOpen('setIfAbsent')
    const ttl = resultChecks.setIfAbsent(key, value, ttlMs)
    await this.connect()
    const set = await this.#connection!.write(
      () => this.#sql!.setIfAbsent(key, value, ttl, Date.now()),
      this.#resolved.busyTimeoutMs,
      this.#sync,
    )
    this.#sweeper.afterWrite()
    return set
  }

  /** The value under `key`, if present and not expired. */
  async getValue(key: string): Promise<string | undefined> {
    this.#assertOpen('getValue')
    resultChecks.id('getValue', 'key', key)
    await this.connect()
    return this.#connection!.read(() => this.#sql!.getValue(key, Date.now()))
  }

  /** Deletes expired rows now (a batch of each kind); returns how many of each. */
  async cleanup(): Promise<{ results: number; kv: number; groups: number; rates: number; slots: number }> {
    this.#assertOpen('cleanup')
    await this.connect()
    return this.#connection!.write(() => {
      const now = Date.now()
      return { ...this.#sql!.sweep(now, CLEANUP_BATCH), ...this.#flowSql!.sweep(now, CLEANUP_BATCH) }
    }, this.#resolved.busyTimeoutMs)
  }

  /**
   * Records one start for `key` unless `max` were recorded in the last `perMs`: 0 when recorded,
   * else ms until a start leaves the window (1 to `perMs`).
   */
  takeRate(key: string, max: number, perMs: number): Promise<number> {
    return this.#flow.takeRate(key, max, perMs)
  }

  /** Takes or renews one of the `max` slots of `key` for `holder`, for `leaseMs`; false when all are held by others. */
  acquireSlot(key: string, holder: string, max: number, leaseMs: number): Promise<boolean> {
    return this.#flow.acquireSlot(key, holder, max, leaseMs)
  }

  /** Gives back `holder`'s slot of `key`, if it holds one. */
  releaseSlot(key: string, holder: string): Promise<void> {
    return this.#flow.releaseSlot(key, holder)
  }

  /** Pauses or resumes `queue` for every process on the file. */
  setPaused(queue: string, paused: boolean): Promise<void> {
    return this.#flow.setPaused(queue, paused)
  }

  /** Every paused queue, sorted. */
  pausedQueues(): Promise<string[]> {
    return this.#flow.pausedQueues()
  }

  /** Sets `key` to `value` (the key space of `setIfAbsent`), replacing what is there, for `ttlMs`. */
  putValue(key: string, value: string, ttlMs: number): Promise<void> {
    return this.#flow.putValue(key, value, ttlMs)
  }

  /** Stores task events (one short transaction per 200) and hands them to live subscribers. */
  async publishEvents(events: readonly TaskEvent[]): Promise<void> {
    this.#assertOpen('publishEvents')
    resultChecks.events(events)
    await this.connect()
    return this.#events!.publishEvents(events)
  }

  /**
   * Calls `onEvent` for each event that passes `filter`, written from now on by any process on
   * the file: this process's at once, others' within `pollIntervalMs` (5 ms while busy).
   */
  async subscribeEvents(
    filter: EventFilter,
    onEvent: (event: TaskEvent) => void,
  ): Promise<BackendEventSubscription> {
    this.#assertOpen('subscribeEvents')
    await this.connect()
    return this.#events!.subscribeEvents(filter ?? {}, onEvent)
  }

  /** The last `limit` events of `queue` (at most `eventRetention` and a bit), oldest first. */
  async recentEvents(queue: string, limit: number): Promise<TaskEvent[]> {
    this.#assertOpen('recentEvents')
    resultChecks.recentEvents(queue, limit)
    if (limit <= 0) return []
    await this.connect()
    return this.#events!.recentEvents(queue, limit)
  }

  #assertOpen(what: string): void {
    this.#lifecycle.assertOpen(what)
  }
}
