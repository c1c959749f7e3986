import type { GroupProgress, MemberOutcome, TaskRecord, TaskState } from '../result-backend.js'
import { isFinalState } from '../result-backend.js'
import { DueQueue } from './due-queue.js'

interface Expiring {
  expiresAt: number
}

interface RecordEntry extends Expiring {
  readonly state: TaskState
  /** JSON text: a stored record behaves like one read back from a real store. */
  readonly json: string
}

interface GroupEntry extends Expiring {
  readonly size: number
  readonly outcomes: Map<number, string>
}

interface ValueEntry extends Expiring {
  readonly value: string
}

type Table = 'records' | 'groups' | 'values'

interface ExpiryItem {
  readonly table: Table
  readonly key: string
  readonly entry: Expiring
}

/** Called with the record's JSON when a final state is written. */
export type FinalListener = (json: string) => void

/**
 * The result half of a {@link MemoryStore}: task records, group counters and claims, each with
 * an expiry. Records are kept as JSON so that what comes back is what a real store would return.
 * Waiters on a task id are woken synchronously by the write that makes its state final.
 * Expired entries are dropped by one timer for the earliest expiry, and ignored when read
 * before it fires.
 */
export class MemoryResults {
  readonly #records = new Map<string, RecordEntry>()
  readonly #groups = new Map<string, GroupEntry>()
  readonly #values = new Map<string, ValueEntry>()
  readonly #listeners = new Map<string, Set<FinalListener>>()
  readonly #expiry = new DueQueue<ExpiryItem>((item) => this.#drop(item))

  /** Write a record unless a CANCELED one is stored; returns the state stored after the call. */
  setState(record: TaskRecord, ttlMs: number): TaskState {
    const current = this.#live(this.#records, 'records', record.id)
    if (current?.state === 'CANCELED') return 'CANCELED'
    const entry: RecordEntry = { state: record.state, json: JSON.stringify(record), expiresAt: 0 }
    this.#put(this.#records, 'records', record.id, entry, ttlMs)
    if (isFinalState(record.state)) {
      const listeners = this.#listeners.get(record.id)
      if (listeners !== undefined) for (const listener of [...listeners]) listener(entry.json)
    }
    return record.state
  }

  /** The stored record (a fresh copy), if present and not expired. */
  getState(id: string): TaskRecord | undefined {
    const entry = this.#live(this.#records, 'records', id)
    return entry === undefined ? undefined : (JSON.parse(entry.json) as TaskRecord)
  }

  /**
   * Call `listener` with the record's JSON once a final state is written. When it already is,
   * returns that JSON instead of subscribing. Otherwise returns an unsubscribe function.
   */
  onFinal(id: string, listener: FinalListener): string | (() => void) {
    const entry = this.#live(this.#records, 'records', id)
    if (entry !== undefined && isFinalState(entry.state)) return entry.json
    let listeners = this.#listeners.get(id)
    if (listeners === undefined) {
      listeners = new Set()
      this.#listeners.set(id, listeners)
    }
    listeners.add(listener)
    return () => {
      const set = this.#listeners.get(id)
      set?.delete(listener)
      if (set?.size === 0) this.#listeners.delete(id)
    }
  }

  /** Record member `index` of a group of `size` and report progress (see `ResultBackend`). */
  completeGroupMember(
    groupId: string,
    index: number,
    size: number,
    outcome: MemberOutcome,
    ttlMs: number,
  ): GroupProgress {
    let group = this.#live(this.#groups, 'groups', groupId)
    if (group !== undefined && group.size !== size) {
      throw new TypeError(`group ${groupId} has size ${group.size}, not ${size}`)
    }
    group ??= { size, outcomes: new Map(), expiresAt: 0 }
    const isNew = !group.outcomes.has(index)
    if (isNew) group.outcomes.set(index, JSON.stringify(outcome))
    this.#put(this.#groups, 'groups', groupId, group, ttlMs)
    const completed = group.outcomes.size
    if (completed < size) return { completed, done: false }
    const outcomes: MemberOutcome[] = []
    for (let i = 0; i < size; i++) outcomes.push(JSON.parse(group.outcomes.get(i)!) as MemberOutcome)
    return { completed, done: true, outcomes }
  }

  /** Set `key` unless a live value exists; true when this call set it. */
  setIfAbsent(key: string, value: string, ttlMs: number): boolean {
    if (this.#live(this.#values, 'values', key) !== undefined) return false
    this.#put(this.#values, 'values', key, { value, expiresAt: 0 }, ttlMs)
    return true
  }

  /** Set `key` to `value`, replacing a live value (and its expiry). */
  putValue(key: string, value: string, ttlMs: number): void {
    this.#put(this.#values, 'values', key, { value, expiresAt: 0 }, ttlMs)
  }

  /** The live value under `key`. */
  getValue(key: string): string | undefined {
    return this.#live(this.#values, 'values', key)?.value
  }

  /** Stop the expiry timer (no backend is open on the store); reads still ignore expired entries. */
  suspend(): void {
    this.#expiry.suspend()
  }

  /** Re-arm the expiry timer. */
  resume(): void {
    this.#expiry.resume()
  }

  #live<E extends Expiring>(map: Map<string, E>, table: Table, key: string): E | undefined {
    const entry = map.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt > Date.now()) return entry
    this.#drop({ table, key, entry })
    return undefined
  }

  #put<E extends Expiring>(map: Map<string, E>, table: Table, key: string, entry: E, ttlMs: number): void {
    entry.expiresAt = Date.now() + ttlMs
    map.set(key, entry)
    this.#expiry.push(entry.expiresAt, { table, key, entry })
  }

  #drop(item: ExpiryItem): void {
    const map: Map<string, Expiring> =
      item.table === 'records' ? this.#records : item.table === 'groups' ? this.#groups : this.#values
    if (map.get(item.key) === item.entry && item.entry.expiresAt <= Date.now()) map.delete(item.key)
  }
}
