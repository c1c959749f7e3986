import { isFinalState, type TaskRecord, WaitRegistry } from '@errand/core'
import type { ChangeFeed } from './change-feed.js'

/** The wake-up name of a task id in the {@link ChangeFeed}. */
export function resultTopic(id: string): string {
  return `r:${id}`
}

/**
 * The `waitFor` callers of one backend (core's `WaitRegistry`), woken by the change feed: a
 * final state written in this process wakes its waiters at once (the writer announces it after
 * commit); writes by other processes are found by re-reading every waited id whenever the change
 * feed sees another connection commit. Reads are synchronous, so registering and then reading
 * cannot miss a racing write.
 */
export class Waiters {
  readonly #feed: ChangeFeed
  readonly #read: (id: string) => TaskRecord | undefined
  readonly #pollIntervalMs: number
  /** Per waited id, the feed subscription to drop when its last waiter leaves. */
  readonly #unsubscribe = new Map<string, () => void>()
  readonly #registry: WaitRegistry<TaskRecord>
  #stopExternal: (() => void) | undefined

  constructor(feed: ChangeFeed, read: (id: string) => TaskRecord | undefined, pollIntervalMs: number) {
    this.#feed = feed
    this.#read = read
    this.#pollIntervalMs = pollIntervalMs
    this.#registry = new WaitRegistry({ watch: (id) => this.#watch(id), unwatch: (id) => this.#unwatch(id) })
  }

  /** Resolves with the record once its state is final; rejects with the signal's reason. */
  wait(id: string, signal: AbortSignal | undefined): Promise<TaskRecord> {
    const waiting = this.#registry.wait(id, signal)
    this.#check(id)
    return waiting
  }

  /** Rejects every pending wait, and every later one, with `err` (the backend's `ERR_CLOSED`). */
  closeAll(err: Error): void {
    this.#registry.closeAll(err)
  }

  #watch(id: string): void {
    this.#unsubscribe.set(
      id,
      this.#feed.on(resultTopic(id), () => this.#check(id)),
    )
    this.#stopExternal ??= this.#feed.onExternal(() => {
      for (const key of this.#registry.ids()) this.#check(key)
    }, this.#pollIntervalMs)
  }

  #unwatch(id: string): void {
    this.#unsubscribe.get(id)?.()
    this.#unsubscribe.delete(id)
    if (this.#registry.size === 0) {
      this.#stopExternal?.()
      this.#stopExternal = undefined
    }
  }

  #check(id: string): void {
    if (!this.#registry.has(id)) return
    let record: TaskRecord | undefined
    try {
      record = this.#read(id)
    } catch (err) {
      this.#registry.reject(id, err)
      return
    }
    if (record !== undefined && isFinalState(record.state)) this.#registry.resolve(id, record)
  }
}
