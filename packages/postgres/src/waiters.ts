import { ClosedError, isFinalState, reconnectDelay, type TaskRecord } from '@errand/core'
import { isConnectionError } from './connection.js'
import { ADAPTER } from './options.js'

interface Waiter {
  readonly resolve: (record: TaskRecord) => void
  readonly reject: (err: unknown) => void
}

/** Reads records by id, `undefined` where unknown. */
export type ReadRecords = (ids: string[]) => Promise<(TaskRecord | undefined)[]>

/**
 * The `waitFor` callers of one backend, keyed by task id. A NOTIFY names an id to re-read; a
 * re-established LISTEN connection re-reads them all. Reads are coalesced: the ids to check in
 * one I/O turn go out in one query.
 */
export class Waiters {
  private readonly read: ReadRecords
  private readonly byId = new Map<string, Set<Waiter>>()
  private readonly toCheck = new Set<string>()
  private scheduled = false
  private closed = false
  /** Reads in a row that failed for a lost connection: the retry waits grow with it. */
  private failures = 0

  constructor(read: ReadRecords) {
    this.read = read
  }

  /**
   * Waits for `id` to reach a final state. The caller is already LISTENing, so registering and
   * then reading cannot miss a write that races the call.
   */
  wait(id: string, signal: AbortSignal): Promise<TaskRecord> {
    if (signal.aborted) return Promise.reject(signal.reason)
    if (this.closed) return Promise.reject(new ClosedError('waitFor after close()', { adapter: ADAPTER }))
    return new Promise<TaskRecord>((resolve, reject) => {
      const onAbort = (): void => {
        this.remove(id, waiter)
        reject(signal.reason)
      }
      const waiter: Waiter = {
        resolve: (record) => {
          signal.removeEventListener('abort', onAbort)
          resolve(record)
        },
        reject: (err) => {
          signal.removeEventListener('abort', onAbort)
          reject(err)
        },
      }
      signal.addEventListener('abort', onAbort, { once: true })
      let set = this.byId.get(id)
      if (!set) {
        set = new Set()
        this.byId.set(id, set)
      }
      set.add(waiter)
      this.check(id)
    })
  }

  /** A NOTIFY for `id`, or `undefined` after a reconnect (re-check everything). */
  notify(id: string | undefined): void {
    if (id === undefined) for (const key of this.byId.keys()) this.check(key)
    else if (this.byId.has(id)) this.check(id)
  }

  /** Rejects every pending wait with ERR_CLOSED. */
  closeAll(): void {
    this.closed = true
    const err = new ClosedError('backend closed while waiting', { adapter: ADAPTER })
    for (const set of this.byId.values()) for (const w of set) w.reject(err)
    this.byId.clear()
  }

  private check(id: string): void {
    this.toCheck.add(id)
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      const ids = [...this.toCheck].filter((i) => this.byId.has(i))
      this.toCheck.clear()
      if (ids.length > 0) void this.run(ids)
    })
  }

  private async run(ids: string[]): Promise<void> {
    let records: (TaskRecord | undefined)[]
    try {
      records = await this.read(ids)
    } catch (err) {
      if (this.closed) return
      if (isConnectionError(err) || (err as { code?: string }).code === 'ERR_CONNECTION') {
        // The LISTEN connection's return re-checks everyone; meanwhile retry on a timer too.
        setTimeout(
          () => {
            for (const id of ids) if (this.byId.has(id)) this.check(id)
          },
          reconnectDelay(++this.failures),
        ).unref()
        return
      }
      for (const id of ids) {
        const set = this.byId.get(id)
        this.byId.delete(id)
        for (const w of set ?? []) w.reject(err)
      }
      return
    }
    this.failures = 0
    for (const [i, id] of ids.entries()) {
      const record = records[i]
      if (record === undefined || !isFinalState(record.state)) continue
      const set = this.byId.get(id)
      this.byId.delete(id)
      for (const w of set ?? []) w.resolve(record)
    }
  }

  private remove(id: string, waiter: Waiter): void {
    const set = this.byId.get(id)
    if (!set) return
    set.delete(waiter)
    if (set.size === 0) this.byId.delete(id)
  }
}
