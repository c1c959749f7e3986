import {
  type BackendEventSubscription,
  DecodeError,
  type EventFilter,
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
import { COMPLETE_MEMBER } from './backend-scripts.js'
import { parseTaskRecord } from './codec.js'
import { Connections } from './connection.js'
import { eventKeys, RedisEvents } from './events.js'
import { RedisFlowControl } from './flow.js'
import { type BackendKeys, backendKeys, flowKeys } from './keys.js'
import { parseBackendOptions, type RedisResultBackendOptions } from './options.js'
import { type RecordWrite, registerBackend } from './same-store.js'
import { StateWriter } from './state-writer.js'
import { FinalWaiters } from './waiters.js'

const ADAPTER = { adapter: 'redis' } as const

/**
 * A {@link ResultBackend} on Redis (standalone or Cluster).
 *
 * - Records are JSON strings under `<prefix>:result:<id>` with a TTL, written by one script that
 *   refuses to overwrite CANCELED and PUBLISHes final records on `<prefix>:done:<id>`.
 * - `waitFor` subscribes on one shared subscriber connection, then reads: pushed, no polling.
 * - `completeGroupMember` is one script: HSETNX of the member's outcome, count, PEXPIRE.
 * - `setIfAbsent` is `SET NX PX`.
 * - Task events (`capabilities.events`): a capped stream per queue plus an all-queues stream read
 *   live with `XREAD BLOCK` on one extra connection (see `RedisEvents`).
 * - Flow control (`capabilities.flowControl`): one command per call on one key, scripts on the
 *   server clock for rate limits and slots (see `RedisFlowControl`).
 * Keys of different tasks hash to different cluster slots; multi-key reads are split per key.
 *
 * @example
 * ```ts
 * const backend = new RedisResultBackend('redis://127.0.0.1:6379')
 * await backend.connect()
 * await backend.setState({ id: 't1', state: 'SUCCESS', result: 42 }, { ttlMs: 86_400_000 })
 * ```
 */
export class RedisResultBackend implements ResultBackend, FlowControlStore {
  readonly name = 'redis'
  readonly capabilities: ResultBackendCapabilities = resultBackendCapabilities({
    pushWait: true,
    events: true,
    flowControl: true,
  })
  readonly #conns: Connections
  readonly #keys: BackendKeys
  readonly #waiters: FinalWaiters
  /** State writes of one tick go out as one script call (standalone only). */
  readonly #writer: StateWriter
  readonly #events: RedisEvents
  readonly #flow: RedisFlowControl
  /** Connect once, close once, `ERR_CLOSED` after close (core's rules). */
  readonly #lifecycle = new Lifecycle('redis', 'result backend')

  /**
   * Takes a URL string or options; does not connect. Throws `InvalidOptionError` naming the
   * field when options are invalid. Without `url` or `client`, uses `REDIS_URL` or
   * `redis://127.0.0.1:6379`.
   */
  constructor(options: RedisResultBackendOptions | string = {}) {
    const parsed = parseBackendOptions(options)
    this.#conns = new Connections(parsed.connection, parsed.logger)
    this.#keys = backendKeys(parsed.keyPrefix)
    this.#writer = new StateWriter(this.#conns.main, !this.#conns.cluster)
    this.#events = new RedisEvents(this.#conns, eventKeys(parsed.keyPrefix), parsed.eventRetention)
    this.#flow = new RedisFlowControl(this.#conns, flowKeys(parsed.keyPrefix), this.#keys.value)
    this.#waiters = new FinalWaiters(
      this.#conns,
      this.#keys.channel,
      (id) => this.#conns.main.get(this.#keys.record(id)),
      parsed.waitPollMs,
    )
    registerBackend(this, {
      keyPrefix: parsed.keyPrefix,
      conns: this.#conns,
      prepare: (record, options) => this.#prepare(record, options),
    })
  }

  /** Connect (a given client is only checked). Rejects with `ERR_CONNECTION` when unreachable. */
  connect(): Promise<void> {
    return this.#lifecycle.connect(() => this.#conns.connect())
  }

  /** Reject pending `waitFor` calls with `ERR_CLOSED` and close the connections we created. */
  close(): Promise<void> {
    return this.#lifecycle.close(async () => {
      this.#waiters.close(this.#lifecycle.closedError('waitFor'))
      const events = this.#events.close()
      await this.#conns.close()
      await events
    })
  }

  /** Write `record` unless a CANCELED one is stored; returns the state stored after the call. */
  async setState(record: TaskRecord, options: SetStateOptions): Promise<TaskState> {
    const { key, args } = this.#prepare(record, options)
    const stored = await this.#call('setState', () => this.#writer.write(key, args))
    return stored as TaskState
  }

  /**
   * A checked record as SET_STATES' key and arguments (also what a broker on the same store
   * writes in its ack script: see same-store.ts).
   */
  #prepare(record: TaskRecord, options: SetStateOptions): RecordWrite {
    this.#assertOpen('setState')
    const ttlMs = resultChecks.setState(record, options)
    // The state goes first so the script can recognise CANCELED by a prefix, without decoding.
    // Core's worker builds its records with the state first: then no reordered copy is made.
    let json: string
    if (stateLeads(record)) json = JSON.stringify(record)
    else {
      const { state, ...rest } = record
      json = JSON.stringify({ state, ...rest })
    }
    const final = isFinalState(record.state) ? '1' : '0'
    return {
      key: this.#keys.record(record.id),
      args: [json, ttlMs, final, this.#keys.channel(record.id), record.state],
    }
  }

  /** The record of `id`, if present and not expired. */
  async getState(id: string): Promise<TaskRecord | undefined> {
    this.#assertOpen('getState')
    resultChecks.id('getState', 'id', id)
    const json = await this.#call('getState', () => this.#conns.main.get(this.#keys.record(id)))
    if (json === null) return undefined
    const record = parseTaskRecord(json)
    if (record === undefined) {
      throw new DecodeError(`the stored result of task "${id}" is not a task record`, ADAPTER)
    }
    return record
  }

  /**
   * Records of `ids` in the order asked, `undefined` where unknown (or where the stored value is
   * not a task record: one bad key must not blind a worker's cancellation poll to the rest): one
   * MGET on a standalone server; on a cluster, one GET per key sent together (the keys live on
   * different slots).
   */
  async getStates(ids: readonly string[]): Promise<(TaskRecord | undefined)[]> {
    this.#assertOpen('getStates')
    resultChecks.ids('getStates', ids)
    if (ids.length === 0) return []
    const keys = ids.map((id) => this.#keys.record(id))
    const main = this.#conns.main
    const values = await this.#call('getStates', () =>
      this.#conns.cluster ? Promise.all(keys.map((key) => main.get(key))) : main.mget(...keys),
    )
    return values.map((json) => (json === null ? undefined : parseTaskRecord(json)))
  }

  /**
   * The record once its state is final (at once if it already is), pushed by pub/sub. Rejects
   * with the signal's reason when it aborts, and with `ERR_CLOSED` when this backend closes first.
   */
  async waitFor(id: string, options: { signal: AbortSignal }): Promise<TaskRecord> {
    this.#assertOpen('waitFor')
    resultChecks.id('waitFor', 'id', id)
    return this.#waiters.wait(id, options?.signal)
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
    const key = this.#keys.group(groupId)
    let reply: [number, Buffer[]?]
    try {
      const args = [index, size, JSON.stringify(outcome), ttlMs]
      reply = (await COMPLETE_MEMBER.run(this.#conns.main, [key], args)) as [number, Buffer[]?]
    } catch (err) {
      const match = err instanceof Error ? /^SIZE (\d+)/.exec(err.message) : null
      if (match) throw new TypeError(`group ${groupId} has size ${match[1]}, not ${size}`)
      throw this.#conns.error('completeGroupMember', err)
    }
    const [completed, fields] = reply
    if (fields === undefined) return { completed, done: false }
    const outcomes: MemberOutcome[] = new Array(size)
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const field = fields[i]!.toString()
      if (field !== 'size') outcomes[Number(field)] = JSON.parse(fields[i + 1]!.toString()) as MemberOutcome
    }
    return { completed, done: true, outcomes }
  }

  /** `SET key value NX PX ttlMs`: true when this call set it. */
  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    this.#assertOpen('setIfAbsent')
    const ttl = resultChecks.setIfAbsent(key, value, ttlMs)
    const reply = await this.#call('setIfAbsent', () =>
      this.#conns.main.set(this.#keys.value(key), value, 'PX', ttl, 'NX'),
    )
    return reply === 'OK'
  }

  /** The value under `key`, if present and not expired. */
  async getValue(key: string): Promise<string | undefined> {
    this.#assertOpen('getValue')
    resultChecks.id('getValue', 'key', key)
    const value = await this.#call('getValue', () => this.#conns.main.get(this.#keys.value(key)))
    return value ?? undefined
  }

  /** Append events to their queues' capped streams and the all-queues stream (one pipeline). */
  async publishEvents(events: readonly TaskEvent[]): Promise<void> {
    this.#assertOpen('publishEvents')
    resultChecks.events(events)
    await this.#call('publishEvents', () => this.#events.publishEvents(events))
  }

  /** Live events of every instance on this prefix, from now on (`XREAD BLOCK`, one connection). */
  async subscribeEvents(
    filter: EventFilter,
    onEvent: (event: TaskEvent) => void,
  ): Promise<BackendEventSubscription> {
    this.#assertOpen('subscribeEvents')
    return this.#call('subscribeEvents', () => this.#events.subscribeEvents(filter ?? {}, onEvent))
  }

  /** The last `limit` events of `queue`, oldest first (`XREVRANGE`). */
  async recentEvents(queue: string, limit: number): Promise<TaskEvent[]> {
    this.#assertOpen('recentEvents')
    resultChecks.recentEvents(queue, limit)
    return this.#call('recentEvents', () => this.#events.recentEvents(queue, limit))
  }

  /** Record one start of `key` unless `max` were recorded in the last `perMs`; else ms to wait. */
  async takeRate(key: string, max: number, perMs: number): Promise<number> {
    this.#assertOpen('takeRate')
    return this.#flow.takeRate(key, max, perMs)
  }

  /** Hold (or renew) one of the `max` slots of `key` for `holder` until `leaseMs` from now. */
  async acquireSlot(key: string, holder: string, max: number, leaseMs: number): Promise<boolean> {
    this.#assertOpen('acquireSlot')
    return this.#flow.acquireSlot(key, holder, max, leaseMs)
  }

  /** Give back `holder`'s slot of `key`. */
  async releaseSlot(key: string, holder: string): Promise<void> {
    this.#assertOpen('releaseSlot')
    return this.#flow.releaseSlot(key, holder)
  }

  /** Pause or resume `queue` for every worker on this prefix. */
  async setPaused(queue: string, paused: boolean): Promise<void> {
    this.#assertOpen('setPaused')
    return this.#flow.setPaused(queue, paused)
  }

  /** Every paused queue on this prefix, sorted. */
  async pausedQueues(): Promise<string[]> {
    this.#assertOpen('pausedQueues')
    return this.#flow.pausedQueues()
  }

  /** `SET key value PX ttlMs` in the key space of `setIfAbsent` / `getValue`. */
  async putValue(key: string, value: string, ttlMs: number): Promise<void> {
    this.#assertOpen('putValue')
    return this.#flow.putValue(key, value, ttlMs)
  }

  async #call<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run()
    } catch (err) {
      throw this.#conns.error(what, err)
    }
  }

  #assertOpen(what: string): void {
    this.#lifecycle.assertOpen(what)
  }
}

/** Whether `state` is the record's first own key (so its JSON starts `{"state":`). */
function stateLeads(record: TaskRecord): boolean {
  for (const key in record) return key === 'state'
  return false
}
