import { isFinalState, reconnectDelay, type TaskRecord, WaitRegistry } from '@errand/core'
import { isConnectionError } from './connection.js'

/** Reads records by id, `undefined` where unknown. */
export type ReadRecords = (ids: string[]) => Promise<(TaskRecord | undefined)[]>

/**
 * The `waitFor` callers of one backend (core's `WaitRegistry`), woken by LISTEN/NOTIFY: a
 * NOTIFY names an id to re-read; a re-established LISTEN connection re-reads them all. Reads are
 * coalesced: the ids to check in one I/O turn go out in one query.
 */
export class Waiters {
  private readonly read: ReadRecords
  private readonly registry = new WaitRegistry<TaskRecord>()
  private readonly toCheck = new Set<string>()
  private scheduled = false
  /** Reads in a row that failed for a lost connection: the retry waits grow with it. */
  private failures = 0

  constructor(read: ReadRecords) {
    this.read = read
  }

  /**
   * Waits for `id` to reach a final state. The caller is already LISTENing, so registering and
   * then reading cannot miss a write that races the call.
   */
  wait(id: string, signal: AbortSignal | undefined): Promise<TaskRecord> {
    const waiting = this.registry.wait(id, signal)
    this.check(id)
    return waiting
  }

  /** A NOTIFY for `id`, or `undefined` after a reconnect (re-check everything). */
  notify(id: string | undefined): void {
    if (id === undefined) for (const key of this.registry.ids()) this.check(key)
    else if (this.registry.has(id)) this.check(id)
  }

  /** Rejects every pending wait, and every later one, with `err` (the backend's ERR_CLOSED). */
  closeAll(err: Error): void {
    this.registry.closeAll(err)
  }

  private check(id: string): void {
    if (!this.registry.has(id)) return
    this.toCheck.add(id)
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      const ids = [...this.toCheck].filter((i) => this.registry.has(i))
      this.toCheck.clear()
      if (ids.length > 0) void this.run(ids)
    })
  }

  private async run(ids: string[]): Promise<void> {
    let records: (TaskRecord | undefined)[]
    try {
      records = await this.read(ids)
    } catch (err) {
      if (this.registry.closed) return
      if (isConnectionError(err) || (err as { code?: string }).code === 'ERR_CONNECTION') {
        // The LISTEN connection's return re-checks everyone; meanwhile retry on a timer too.
        setTimeout(
          () => {
            for (const id of ids) this.check(id)
          },
          reconnectDelay(++this.failures),
        ).unref()
        return
      }
      for (const id of ids) this.registry.reject(id, err)
      return
    }
    this.failures = 0
    for (const [i, id] of ids.entries()) {
      const record = records[i]
      if (record !== undefined && isFinalState(record.state)) this.registry.resolve(id, record)
    }
  }
}
