/**
 * A double-ended queue on a growable ring buffer: O(1) push, unshift and shift, where an array's
 * `shift()` is O(n) on long queues.
 */
export class Deque<T> {
  #buf: (T | undefined)[] = new Array<T | undefined>(16)
  #head = 0
  #size = 0

  /** Number of items held. */
  get size(): number {
    return this.#size
  }

  /** Append at the back. */
  push(item: T): void {
    if (this.#size === this.#buf.length) this.#grow()
    this.#buf[(this.#head + this.#size) & (this.#buf.length - 1)] = item
    this.#size++
  }

  /** Insert at the front. */
  unshift(item: T): void {
    if (this.#size === this.#buf.length) this.#grow()
    this.#head = (this.#head - 1) & (this.#buf.length - 1)
    this.#buf[this.#head] = item
    this.#size++
  }

  /** Remove and return the front item, if any. */
  shift(): T | undefined {
    if (this.#size === 0) return undefined
    const item = this.#buf[this.#head]
    this.#buf[this.#head] = undefined
    this.#head = (this.#head + 1) & (this.#buf.length - 1)
    this.#size--
    return item
  }

  /** The items, front to back (a copy). */
  toArray(): T[] {
    const out: T[] = []
    for (let i = 0; i < this.#size; i++) out.push(this.#buf[(this.#head + i) & (this.#buf.length - 1)] as T)
    return out
  }

  /** Remove everything. */
  clear(): void {
    this.#buf = new Array<T | undefined>(16)
    this.#head = 0
    this.#size = 0
  }

  #grow(): void {
    const next = new Array<T | undefined>(this.#buf.length * 2)
    for (let i = 0; i < this.#size; i++) next[i] = this.#buf[(this.#head + i) & (this.#buf.length - 1)]
    this.#buf = next
    this.#head = 0
  }
}
