import { ClosedError, isFinalState, type TaskRecord } from '@errand/core'
import type { ChangeFeed } from './change-feed.js'
import { ADAPTER } from './options.js'

interface Waiter {
  readonly resolve: (record: TaskRecord) => void
  readonly reject: (err: unknown) => void
}

/** The wake-up name of a task id in the {@link ChangeFeed}. */
export function resultTopic(id: string): string {
  return `r:${id}`
}

/**
 * The `waitFor` callers of one backend, by task id. A final state written in this process wakes
 * its waiters at once (the writer announces it after commit); writes by other processes are
 * found by re-reading every waited id whenever the change feed sees another connection commit.
 * Reads are synchronous, so registering and then reading cannot miss a racing write.
 */
export class Waiters {
  readonly #feed: ChangeFeed
  readonly #read: (id: string) => TaskRecord | undefined
  readonly #pollIntervalMs: number
  readonly #byId = new Map<string, { waiters: Set<Waiter>; unsubscribe: () => void }>()
  #stopExternal: (() => void) | undefined
  #closed = false

  constructor(feed: ChangeFeed, read: (id: string) => TaskRecord | undefined, pollIntervalMs: number) {
    this.#feed = feed
    this.#read = read
    this.#pollIntervalMs = pollIntervalMs
  }

  /** Resolves with the record once its state is final; rejects with the signal's reason. */
  wait(id: string, signal: AbortSignal): Promise<TaskRecord> {
    if (signal.aborted) return Promise.reject(signal.reason)
    if (this.#closed) return Promise.reject(new ClosedError('waitFor after close()', { adapter: ADAPTER }))
    return new Promise<TaskRecord>((resolve, reject) => {
      const onAbort = (): void => {
        this.#remove(id, waiter)
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
      let entry = this.#byId.get(id)
      if (entry === undefined) {
        entry = { waiters: new Set(), unsubscribe: this.#feed.on(resultTopic(id), () => this.#check(id)) }
        this.#byId.set(id, entry)
      }
      entry.waiters.add(waiter)
      this.#stopExternal ??= this.#feed.onExternal(() => {
        for (const key of [...this.#byId.keys()]) this.#check(key)
      }, this.#pollIntervalMs)
      this.#check(id)
    })
  }

  /** Rejects every pending wait with `ERR_CLOSED`. */
  closeAll(): void {
    this.#closed = true
    const err = new ClosedError('the result backend closed while waiting', { adapter: ADAPTER })
    for (const [id, entry] of [...this.#byId]) {
      this.#drop(id)
      for (const w of entry.waiters) w.reject(err)
    }
  }

  #check(id: string): void {
    const entry = this.#byId.get(id)
    if (entry === undefined) return
    let record: TaskRecord | undefined
    try {
      record = this.#read(id)
    } catch (err) {
      this.#drop(id)
      for (const w of entry.waiters) w.reject(err)
      return
    }
    if (record === undefined || !isFinalState(record.state)) return
    this.#drop(id)
    for (const w of entry.waiters) w.resolve(record)
  }

  #remove(id: string, waiter: Waiter): void {
    const entry = this.#byId.get(id)
    if (entry === undefined) return
    entry.waiters.delete(waiter)
    if (entry.waiters.size === 0) this.#drop(id)
  }

  #drop(id: string): void {
    const entry = this.#byId.get(id)
    if (entry === undefined) return
    entry.unsubscribe()
    this.#byId.delete(id)
    if (this.#byId.size === 0) {
      this.#stopExternal?.()
      this.#stopExternal = undefined
    }
  }
}
