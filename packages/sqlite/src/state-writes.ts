import {
  Batcher,
  type BatchOutcome,
  batchOk,
  isFinalState,
  type TaskRecord,
  type TaskState,
} from '@errand/core'
import type { SqliteConnection, SyncLevel } from './connection.js'
import type { ResultsSql } from './results-sql.js'
import { resultTopic } from './waiters.js'

/** Most records one transaction writes. */
const MAX_WRITES_PER_COMMIT = 10_000

interface StateWrite {
  readonly record: TaskRecord
  readonly json: string
  readonly ttlMs: number
}

/** Settings of {@link StateWrites}. */
export interface StateWritesSettings {
  readonly busyTimeoutMs: number
  readonly sync: SyncLevel
  /** Runs after each transaction (the backend's sweep of expired rows hangs on it). */
  readonly afterFlush: () => void
}

/**
 * Group commit for `setState`, on core's {@link Batcher}: the calls of one event-loop turn (a
 * worker settling many tasks) share one transaction, so one commit, one at a time. Each call
 * resolves with the state stored after it (a CANCELED record is never overwritten); a final
 * state written here wakes this process's `waitFor` callers at once, after the commit.
 */
export class StateWrites {
  readonly #connection: SqliteConnection
  readonly #sql: ResultsSql
  readonly #settings: StateWritesSettings
  readonly #batcher = new Batcher<StateWrite, TaskState>({
    flush: (writes) => this.#write(writes),
    maxItems: MAX_WRITES_PER_COMMIT,
    maxInFlight: 1,
  })

  constructor(connection: SqliteConnection, sql: ResultsSql, settings: StateWritesSettings) {
    this.#connection = connection
    this.#sql = sql
    this.#settings = settings
  }

  /** Writes `record` (as `json`) in the next transaction; the state stored after it. */
  add(record: TaskRecord, json: string, ttlMs: number): Promise<TaskState> {
    return this.#batcher.add({ record, json, ttlMs })
  }

  /** Resolves once nothing is queued or being written. */
  drained(): Promise<void> {
    return this.#batcher.drained()
  }

  async #write(writes: readonly StateWrite[]): Promise<BatchOutcome<TaskState>[]> {
    try {
      const states = await this.#connection.write(
        () => {
          const now = Date.now()
          return writes.map((w) => this.#sql.setState(w.record, w.json, w.ttlMs, now))
        },
        this.#settings.busyTimeoutMs,
        this.#settings.sync,
      )
      for (const [i, w] of writes.entries()) {
        if (states[i] === w.record.state && isFinalState(w.record.state)) {
          this.#connection.feed.emit(resultTopic(w.record.id))
        }
      }
      return batchOk(states)
    } finally {
      this.#settings.afterFlush()
    }
  }
}
