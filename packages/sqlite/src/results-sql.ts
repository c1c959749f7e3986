import type { GroupProgress, MemberOutcome, TaskRecord, TaskState } from '@errand/core'
import type { SqliteConnection } from './connection.js'

// A CANCELED record that has not expired is never overwritten: the upsert then changes nothing.
const SET_STATE = `INSERT INTO errand_results (id, state, record, expires_at)
  VALUES (@id, @state, @record, @expires)
  ON CONFLICT (id) DO UPDATE SET state = excluded.state, record = excluded.record, expires_at = excluded.expires_at
  WHERE errand_results.state <> 'CANCELED' OR errand_results.expires_at <= @now`
const GET_STATE = `SELECT record FROM errand_results WHERE id = ? AND expires_at > ?`

const GET_GROUP = `SELECT size, completed, expires_at AS expiresAt FROM errand_groups WHERE id = ?`
const DROP_MEMBERS = `DELETE FROM errand_group_members WHERE group_id = ?`
const DROP_GROUP = `DELETE FROM errand_groups WHERE id = ?`
const ADD_MEMBER = `INSERT OR IGNORE INTO errand_group_members (group_id, idx, outcome) VALUES (?, ?, ?)`
const PUT_GROUP = `INSERT INTO errand_groups (id, size, completed, expires_at) VALUES (@id, @size, @completed, @expires)
  ON CONFLICT (id) DO UPDATE SET completed = excluded.completed, expires_at = excluded.expires_at`
const OUTCOMES = `SELECT outcome FROM errand_group_members WHERE group_id = ? ORDER BY idx`

const CLAIM = `INSERT INTO errand_kv (key, value, expires_at) VALUES (@key, @value, @expires)
  ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
  WHERE errand_kv.expires_at <= @now`
const GET_VALUE = `SELECT value FROM errand_kv WHERE key = ? AND expires_at > ?`

const SWEEP_RESULTS = `DELETE FROM errand_results WHERE id IN
  (SELECT id FROM errand_results WHERE expires_at <= @now LIMIT @limit)`
const SWEEP_KV = `DELETE FROM errand_kv WHERE key IN (SELECT key FROM errand_kv WHERE expires_at <= @now LIMIT @limit)`
const EXPIRED_GROUPS = `SELECT id FROM errand_groups WHERE expires_at <= @now LIMIT @limit`

/**
 * The result verbs, one statement (or one transaction body) each. Expired rows are ignored by
 * every read and replaced by every write; {@link sweep} deletes them in small batches.
 */
export class ResultsSql {
  readonly #c: SqliteConnection

  constructor(connection: SqliteConnection) {
    this.#c = connection
  }

  /** Writes the record unless a live CANCELED one is there; the state stored after the call. */
  setState(record: TaskRecord, json: string, ttlMs: number, now: number): TaskState {
    const { changes } = this.#c.statement(SET_STATE).run({
      id: record.id,
      state: record.state,
      record: json,
      expires: now + ttlMs,
      now,
    })
    return changes > 0 ? record.state : 'CANCELED'
  }

  getState(id: string, now: number): TaskRecord | undefined {
    const json = this.#c.statement(GET_STATE).pluck().get(id, now) as string | undefined
    return json === undefined ? undefined : (JSON.parse(json) as TaskRecord)
  }

  /**
   * Records member `index` (once) and counts distinct members; an expired group starts over.
   * Runs inside the caller's write transaction, which makes it atomic across processes.
   */
  completeMember(
    groupId: string,
    index: number,
    size: number,
    outcome: MemberOutcome,
    ttlMs: number,
    now: number,
  ): GroupProgress {
    let group = this.#c.statement(GET_GROUP).get(groupId) as
      | { size: number; completed: number; expiresAt: number }
      | undefined
    if (group !== undefined && group.expiresAt <= now) {
      this.#c.statement(DROP_MEMBERS).run(groupId)
      this.#c.statement(DROP_GROUP).run(groupId)
      group = undefined
    }
    if (group !== undefined && group.size !== size) {
      throw new TypeError(`group ${groupId} has size ${group.size}, not ${size}`)
    }
    const added = this.#c.statement(ADD_MEMBER).run(groupId, index, JSON.stringify(outcome)).changes
    const completed = (group?.completed ?? 0) + added
    this.#c.statement(PUT_GROUP).run({ id: groupId, size, completed, expires: now + ttlMs })
    if (completed < size) return { completed, done: false }
    const rows = this.#c.statement(OUTCOMES).pluck().all(groupId) as string[]
    return { completed, done: true, outcomes: rows.map((r) => JSON.parse(r) as MemberOutcome) }
  }

  /** True when this call set `key` (absent or expired before). */
  setIfAbsent(key: string, value: string, ttlMs: number, now: number): boolean {
    return this.#c.statement(CLAIM).run({ key, value, expires: now + ttlMs, now }).changes > 0
  }

  getValue(key: string, now: number): string | undefined {
    return this.#c.statement(GET_VALUE).pluck().get(key, now) as string | undefined
  }

  /** Deletes up to `limit` expired rows of each kind; returns how many of each. */
  sweep(now: number, limit: number): { results: number; kv: number; groups: number } {
    const results = this.#c.statement(SWEEP_RESULTS).run({ now, limit }).changes
    const kv = this.#c.statement(SWEEP_KV).run({ now, limit }).changes
    const groups = this.#c.statement(EXPIRED_GROUPS).pluck().all({ now, limit }) as string[]
    for (const id of groups) {
      this.#c.statement(DROP_MEMBERS).run(id)
      this.#c.statement(DROP_GROUP).run(id)
    }
    return { results, kv, groups: groups.length }
  }
}
