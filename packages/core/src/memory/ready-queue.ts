import { Deque } from './deque.js'

/**
 * Messages ready for delivery, one FIFO per priority: `shift()` takes the oldest message of the
 * highest priority present.
 */
export class ReadyQueue<T extends { readonly priority: number }> {
  readonly #buckets: (Deque<T> | undefined)[] = []
  #size = 0

  /** Number of ready messages. */
  get size(): number {
    return this.#size
  }

  /** Append at the back of its priority's FIFO. */
  push(item: T): void {
    this.#bucket(item.priority).push(item)
    this.#size++
  }

  /** Put back at the front of its priority's FIFO (a message returned unsettled keeps its place). */
  unshift(item: T): void {
    this.#bucket(item.priority).unshift(item)
    this.#size++
  }

  /** Take the next message: highest priority first, oldest first within a priority. */
  shift(): T | undefined {
    for (let p = this.#buckets.length - 1; p >= 0; p--) {
      const bucket = this.#buckets[p]
      if (bucket !== undefined && bucket.size > 0) {
        this.#size--
        return bucket.shift()
      }
    }
    return undefined
  }

  /** Remove every message; returns how many there were. */
  clear(): number {
    const count = this.#size
    for (const bucket of this.#buckets) bucket?.clear()
    this.#size = 0
    return count
  }

  #bucket(priority: number): Deque<T> {
    let bucket = this.#buckets[priority]
    if (bucket === undefined) {
      for (let p = this.#buckets.length; p < priority; p++) this.#buckets[p] = undefined
      bucket = new Deque<T>()
      this.#buckets[priority] = bucket
    }
    return bucket
  }
}
