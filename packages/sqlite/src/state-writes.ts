import { isFinalState, type TaskRecord, type TaskState } from '@errand/core'
import type { SqliteConnection, SyncLevel } from './connection.js'
import type { ResultsSql } from './results-sql.js'
import { resultTopic } from './waiters.js'

interface StateWrite {
  readonly record: TaskRecord
  readonly json: string
  readonly ttlMs: number
  readonly resolve: (state: TaskState) => void
  readonly reject: (err: unknown) => void
}

/** Settings of {@link StateWrites}. */
export interface StateWritesSettings {
  readonly busyTimeoutMs: number
  readonly sync: SyncLevel
  /** Runs after each transaction (the backend's sweep of expired rows hangs on it). */
  readonly afterFlush: () => void
}

/**
 * Group commit for `setState`: the calls of one event-loop turn (a worker settling many tasks)
 * share one transaction, so one commit. Each call resolves with the state stored after it (a
 * CANCELED record is never overwritten); a final state written here wakes this process's
 * `waitFor` callers at once, after the commit.
 */
export class StateWrites {
  readonly #connection: SqliteConnection
  readonly #sql: ResultsSql
  readonly #settings: StateWritesSettings
  #writes: StateWrite[] = []
  #flushing: Promise<void> | undefined

  constructor(connection: SqliteConnection, sql: ResultsSql, settings: StateWritesSettings) {
    this.#connection = connection
    this.#sql = sql
    this.#settings = settings
  }

  /** Writes `record` (as `json`) in the next transaction; the state stored after it. */
  add(record: TaskRecord, json: string, ttlMs: number): Promise<TaskState> {
    return new Promise<TaskState>((resolve, reject) => {
      this.#writes.push({ record, json, ttlMs, resolve, reject })
      this.#schedule()
    })
  }

  /** Resolves once nothing is queued or being written. */
  async drained(): Promise<void> {
    while (this.#flushing !== undefined) await this.#flushing
  }

  #schedule(): void {
    if (this.#flushing !== undefined) return
    // setImmediate, not a microtask: every write of this turn joins the transaction.
    this.#flushing = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.#flush())
  }

  async #flush(): Promise<void> {
    const batch = this.#writes
    this.#writes = []
    const connection = this.#connection
    try {
      const states = await connection.write(
        () => {
          const now = Date.now()
          return batch.map((w) => this.#sql.setState(w.record, w.json, w.ttlMs, now))
        },
        this.#settings.busyTimeoutMs,
        this.#settings.sync,
      )
      for (const [i, w] of batch.entries()) w.resolve(states[i]!)
      for (const [i, w] of batch.entries()) {
        if (states[i] === w.record.state && isFinalState(w.record.state)) {
          connection.feed.emit(resultTopic(w.record.id))
        }
      }
    } catch (err) {
      for (const w of batch) w.reject(err)
    }
    this.#flushing = undefined
    if (this.#writes.length > 0) this.#schedule()
    this.#settings.afterFlush()
  }
}
