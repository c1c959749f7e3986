import type { TaskEvent } from '../events.js'
import { isTaskState, type MemberOutcome, type SetStateOptions, type TaskRecord } from '../result-backend.js'
import { argumentError, checkCount, checkMs, checkName } from './argument-text.js'

/**
 * Longest task id, group id or claim key a result backend accepts. SQL stores index these
 * columns (a B-tree entry has a size limit); every store takes the same limit so that an id one
 * backend accepts is accepted by all. Core's own ids and keys are far shorter.
 */
export const MAX_RESULT_KEY_LENGTH = 1000

/**
 * The argument checks of a {@link ResultBackend}'s methods, the same on every store. A wrong
 * argument is a `TypeError` (a programming error, not a store failure) whose message names the
 * method and the argument: `setState: ttlMs must be …, got …`. Each check returns what the store
 * writes: durations rounded up to whole ms.
 *
 * @example
 * ```ts
 * async setState(record: TaskRecord, options: SetStateOptions): Promise<TaskState> {
 *   this.lifecycle.assertOpen('setState')
 *   const ttlMs = resultChecks.setState(record, options)
 *   …
 * }
 * ```
 */
export const resultChecks = {
  /** A task id, group id or key: a non-empty string of at most {@link MAX_RESULT_KEY_LENGTH}. */
  id(method: string, what: string, value: unknown): void {
    checkName(method, what, value, MAX_RESULT_KEY_LENGTH)
  },

  /** An array of task ids (`getStates`). */
  ids(method: string, ids: unknown): void {
    if (!Array.isArray(ids)) throw argumentError(method, 'ids', 'an array of strings', ids)
    for (const id of ids) resultChecks.id(method, 'ids[]', id)
  },

  /** A time to live in ms; returns it in whole ms. */
  ttl(method: string, ttlMs: unknown): number {
    return checkMs(method, 'ttlMs', ttlMs)
  },

  /** `setState`'s record (an object with an id and a known state) and options; returns the TTL. */
  setState(record: TaskRecord, options: SetStateOptions): number {
    if (typeof record !== 'object' || record === null) {
      throw argumentError('setState', 'record', 'an object', record)
    }
    resultChecks.id('setState', 'record.id', record.id)
    if (!isTaskState(record.state))
      throw argumentError('setState', 'record.state', 'a task state', record.state)
    return resultChecks.ttl('setState', options?.ttlMs)
  },

  /** `completeGroupMember`'s arguments: `index` in [0, `size`), an outcome; returns the TTL. */
  groupMember(
    groupId: string,
    index: number,
    size: number,
    outcome: MemberOutcome,
    options: SetStateOptions,
  ): number {
    const method = 'completeGroupMember'
    resultChecks.id(method, 'groupId', groupId)
    checkCount(method, 'size', size)
    if (!Number.isInteger(index) || index < 0 || index >= size) {
      throw argumentError(method, 'index', `an integer in [0, ${size})`, index)
    }
    if (typeof outcome !== 'object' || outcome === null || typeof outcome.ok !== 'boolean') {
      throw argumentError(method, 'outcome', '{ ok: true, value } or { ok: false, error }', outcome)
    }
    return resultChecks.ttl(method, options?.ttlMs)
  },

  /** `setIfAbsent`'s key, a string value and the TTL; returns the TTL. */
  setIfAbsent(key: string, value: string, ttlMs: number): number {
    resultChecks.id('setIfAbsent', 'key', key)
    if (typeof value !== 'string') throw argumentError('setIfAbsent', 'value', 'a string', value)
    return resultChecks.ttl('setIfAbsent', ttlMs)
  },

  /** `publishEvents`' batch: an array. */
  events(events: readonly TaskEvent[]): void {
    if (!Array.isArray(events)) throw argumentError('publishEvents', 'events', 'an array', events)
  },

  /** `recentEvents`' queue and an integer `limit` (a limit <= 0 asks for nothing). */
  recentEvents(queue: string, limit: number): void {
    resultChecks.id('recentEvents', 'queue', queue)
    if (!Number.isSafeInteger(limit)) throw argumentError('recentEvents', 'limit', 'an integer', limit)
  },
} as const
