import {
  type BackendEventSubscription,
  Batcher,
  type BatchOutcome,
  batchOk,
  type EventFilter,
  ExpirySweep,
  type FlowControlStore,
  type GroupProgress,
  isFinalState,
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
import { Db } from './connection.js'
import { DEFAULT_EVENT_RETENTION, PostgresEvents } from './events.js'
import { PostgresFlow } from './flow.js'
import { Listener } from './listener.js'
import { resultChannel } from './migrations.js'
import {
  ADAPTER,
  type PostgresResultBackendOptions,
  parseOptions,
  resolveConnection,
  resultBackendOptionsSchema,
} from './options.js'
import { ResultSql } from './result-sql.js'
import { Waiters } from './waiters.js'

const CLEANUP_BATCH = 1000

interface StateWrite {
  readonly record: TaskRecord
  readonly ttlMs: number
}

/**
 * A ResultBackend on PostgreSQL: records, group counters and claims in tables of the schema,
 * each with an `expires_at` that reads filter on and a background sweep deletes. `waitFor` is
 * pushed by LISTEN/NOTIFY on one shared connection; writes from one process are coalesced into
 * one statement (and one commit) per round trip. Flow control (rate logs, concurrency slots,
 * paused queues) is one round trip per call too: see `PostgresFlow`.
 *
 * @example
 * ```ts
 * const backend = new PostgresResultBackend({ url: 'postgres://app@db/app' })
 * await backend.connect()
 * ```
 */
export class PostgresResultBackend implements ResultBackend, FlowControlStore {
  readonly name = ADAPTER
  readonly capabilities: ResultBackendCapabilities = resultBackendCapabilities({
    pushWait: true,
    events: true,
    flowControl: true,
  })
  private readonly db: Db
  private readonly sql: ResultSql
  private readonly listener: Listener
  private readonly channel: string
  private readonly migrateOnConnect: boolean
  private readonly writes: Batcher<StateWrite, TaskState>
  private readonly waiters: Waiters
  private readonly events: PostgresEvents
  private readonly flow: PostgresFlow
  private readonly lifecycle = new Lifecycle(ADAPTER, 'result backend')
  /** Deletes expired rows after writes, once per `cleanupIntervalMs`. */
  private readonly sweeper: ExpirySweep

  constructor(options: PostgresResultBackendOptions) {
    const parsed = parseOptions(resultBackendOptionsSchema, options)
    const resolved = resolveConnection(parsed)
    this.migrateOnConnect = resolved.migrate
    this.db = new Db(resolved)
    this.sweeper = new ExpirySweep({
      intervalMs: parsed.cleanupIntervalMs ?? 60_000,
      batch: CLEANUP_BATCH,
      sweep: () => this.cleanup(),
      onError: (err) => this.db.logger.warn(`cleanup of expired rows failed: ${(err as Error).message}`),
    })
    this.sql = new ResultSql(resolved.schema)
    this.listener = new Listener(this.db)
    this.channel = resultChannel(resolved.schema)
    // One batch at a time keeps two writes to one id in call order.
    this.writes = new Batcher({
      flush: (items) => this.flushStates(items),
      maxInFlight: 1,
      maxItems: 500,
      key: (w) => w.record.id,
    })
    this.waiters = new Waiters((ids) => this.getStates(ids))
    this.events = new PostgresEvents(
      this.db,
      this.listener,
      resolved.schema,
      parsed.eventRetention ?? DEFAULT_EVENT_RETENTION,
    )
    this.flow = new PostgresFlow(this.db, this.lifecycle, resolved.schema, () => this.sweeper.afterWrite())
  }

  /** Migrates (unless disabled) and LISTENs for final states. Idempotent. */
  connect(): Promise<void> {
    return this.lifecycle.connect(async () => {
      try {
        if (this.migrateOnConnect) await this.db.migrate()
        await this.listener.start()
        await this.listener.listen(this.channel, (id) => this.waiters.notify(id))
      } catch (err) {
        await this.listener.close()
        this.listener.reopen()
        throw this.db.wrap(err)
      }
    })
  }

  /** Applies pending schema migrations; safe to run from many processes at once. */
  async migrate(): Promise<number[]> {
    this.lifecycle.assertOpen('migrate')
    return this.db.migrate()
  }

  /**
   * Rejects pending waits with ERR_CLOSED, finishes queued writes, closes connections. Bounded
   * during an outage: writes stop retrying after `closeTimeoutMs`, then connections are dropped
   * (about `closeTimeoutMs + connectTimeoutMs` at worst).
   */
  close(): Promise<void> {
    this.sweeper.stop()
    return this.lifecycle.close(async () => {
      this.waiters.closeAll(this.lifecycle.closedError('waitFor'))
      await this.events.close()
      await this.db.shutdown(() => this.writes.drained(), this.listener)
    })
  }

  async setState(record: TaskRecord, options: SetStateOptions): Promise<TaskState> {
    this.lifecycle.assertOpen('setState')
    const ttlMs = resultChecks.setState(record, options)
    const state = await this.writes.add({ record, ttlMs })
    this.sweeper.afterWrite()
    return state
  }

  async getState(id: string): Promise<TaskRecord | undefined> {
    this.lifecycle.assertOpen('getState')
    resultChecks.id('getState', 'id', id)
    const res = await this.db.query<{ record: string }>(
      { name: `${this.sql.prefix}get`, text: this.sql.getState, values: [id] },
      'idempotent',
    )
    const row = res.rows[0]
    return row === undefined ? undefined : (JSON.parse(row.record) as TaskRecord)
  }

  async getStates(ids: readonly string[]): Promise<(TaskRecord | undefined)[]> {
    this.lifecycle.assertOpen('getStates')
    resultChecks.ids('getStates', ids)
    if (ids.length === 0) return []
    const res = await this.db.query<{ id: string; record: string }>(
      { name: `${this.sql.prefix}get_many`, text: this.sql.getStates, values: [[...new Set(ids)]] },
      'idempotent',
    )
    const byId = new Map(res.rows.map((r) => [r.id, r.record]))
    return ids.map((id) => {
      const text = byId.get(id)
      return text === undefined ? undefined : (JSON.parse(text) as TaskRecord)
    })
  }

  async waitFor(id: string, options: { signal: AbortSignal }): Promise<TaskRecord> {
    this.lifecycle.assertOpen('waitFor')
    resultChecks.id('waitFor', 'id', id)
    await this.lifecycle.pendingConnect()
    return this.waiters.wait(id, options?.signal)
  }

  async completeGroupMember(
    groupId: string,
    index: number,
    size: number,
    outcome: MemberOutcome,
    options: SetStateOptions,
  ): Promise<GroupProgress> {
    this.lifecycle.assertOpen('completeGroupMember')
    const ttlMs = resultChecks.groupMember(groupId, index, size, outcome, options)
    // Not retried on a lost connection: a second run would not count twice (the member row
    // exists), but could answer done to a call that did not complete the group.
    const res = await this.db.query<{
      completed: number
      size: number
      idxs: number[] | null
      outcomes: string[] | null
    }>(
      {
        name: `${this.sql.prefix}member`,
        text: this.sql.completeMember,
        values: [groupId, index, JSON.stringify(outcome), size, ttlMs],
      },
      'connect',
    )
    const row = res.rows[0]
    const completed = Number(row?.completed ?? 0)
    const total = Number(row?.size ?? size)
    this.sweeper.afterWrite()
    if (completed < total || row?.idxs == null || row.outcomes == null) return { completed, done: false }
    const outcomes: MemberOutcome[] = new Array(total)
    for (const [i, idx] of row.idxs.entries()) {
      if (idx < total) outcomes[idx] = JSON.parse(row.outcomes[i]!) as MemberOutcome
    }
    return { completed, done: true, outcomes }
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    this.lifecycle.assertOpen('setIfAbsent')
    const ttl = resultChecks.setIfAbsent(key, value, ttlMs)
    const res = await this.db.query(
      { name: `${this.sql.prefix}claim`, text: this.sql.setIfAbsent, values: [key, value, ttl] },
      'connect',
    )
    this.sweeper.afterWrite()
    return res.rows.length > 0
  }

  async getValue(key: string): Promise<string | undefined> {
    this.lifecycle.assertOpen('getValue')
    resultChecks.id('getValue', 'key', key)
    const res = await this.db.query<{ value: string }>(
      { name: `${this.sql.prefix}value`, text: this.sql.getValue, values: [key] },
      'idempotent',
    )
    return res.rows[0]?.value
  }

  /** Insert a batch into `events` and NOTIFY each (one statement); see `PostgresEvents`. */
  async publishEvents(events: readonly TaskEvent[]): Promise<void> {
    this.lifecycle.assertOpen('publishEvents')
    resultChecks.events(events)
    await this.events.publishEvents(events)
  }

  /** Live events of every instance on this schema, by LISTEN on the events channel. */
  async subscribeEvents(
    filter: EventFilter,
    onEvent: (event: TaskEvent) => void,
  ): Promise<BackendEventSubscription> {
    this.lifecycle.assertOpen('subscribeEvents')
    await this.lifecycle.pendingConnect()
    return this.events.subscribeEvents(filter ?? {}, onEvent)
  }

  /** The last `limit` events of `queue`, oldest first. */
  async recentEvents(queue: string, limit: number): Promise<TaskEvent[]> {
    this.lifecycle.assertOpen('recentEvents')
    resultChecks.recentEvents(queue, limit)
    return this.events.recentEvents(queue, limit)
  }

  /** Trim the events of the queues this instance wrote to back to the retention now. */
  async trimEvents(): Promise<void> {
    this.lifecycle.assertOpen('trimEvents')
    await this.events.trim()
  }

  // Flow control (see PostgresFlow, and migration 7 for the tables and functions).

  takeRate(key: string, max: number, perMs: number): Promise<number> {
    return this.flow.takeRate(key, max, perMs)
  }

  acquireSlot(key: string, holder: string, max: number, leaseMs: number): Promise<boolean> {
    return this.flow.acquireSlot(key, holder, max, leaseMs)
  }

  releaseSlot(key: string, holder: string): Promise<void> {
    return this.flow.releaseSlot(key, holder)
  }

  setPaused(queue: string, paused: boolean): Promise<void> {
    return this.flow.setPaused(queue, paused)
  }

  pausedQueues(): Promise<string[]> {
    return this.flow.pausedQueues()
  }

  putValue(key: string, value: string, ttlMs: number): Promise<void> {
    return this.flow.putValue(key, value, ttlMs)
  }

  /**
   * Deletes expired rows now (a batch of each kind); returns how many of each. `rates` and
   * `slots` are flow-control rows of keys no longer used (0 on a schema not migrated that far).
   */
  async cleanup(): Promise<{ results: number; kv: number; groups: number; rates: number; slots: number }> {
    this.lifecycle.assertOpen('cleanup')
    const res = await this.db.query<{ results: number; kv: number; groups: number }>(
      { text: this.sql.cleanup, values: [CLEANUP_BATCH] },
      'idempotent',
    )
    const flow = await this.flow.sweep(CLEANUP_BATCH)
    return { ...(res.rows[0] ?? { results: 0, kv: 0, groups: 0 }), ...flow }
  }

  private async flushStates(items: readonly StateWrite[]): Promise<BatchOutcome<TaskState>[]> {
    const durable = items.some((w) => isFinalState(w.record.state))
    const res = await this.db.query<{ id: string; state: TaskState }>(
      {
        name: `${this.sql.prefix}set`,
        text: this.sql.setStates,
        values: [
          durable ? 'on' : 'off',
          items.map((w) => w.record.id),
          items.map((w) => w.record.state),
          items.map((w) => w.ttlMs),
          items.map((w) => JSON.stringify(w.record)),
          this.channel,
        ],
      },
      // Replaying a batch writes the same records again: harmless.
      'idempotent',
    )
    const stored = new Map(res.rows.map((r) => [r.id, r.state]))
    // A row not written was CANCELED (and not expired): the call leaves it.
    return batchOk(items.map((w) => stored.get(w.record.id) ?? 'CANCELED'))
  }
}
