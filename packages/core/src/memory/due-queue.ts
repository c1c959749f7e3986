/** Longest delay `setTimeout` accepts (about 24.8 days); longer waits are re-armed in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1

interface Entry<T> {
  readonly due: number
  readonly seq: number
  readonly item: T
}

/**
 * Items that fall due at a time (ms since epoch), kept in a min-heap with a single timer armed
 * for the earliest. When it fires, every due item is handed to `onDue` in due order (ties in
 * insertion order). No polling: nothing runs between due times.
 *
 * The timer is unref'd (it never keeps the process alive) and is cleared while suspended.
 */
export class DueQueue<T> {
  readonly #onDue: (item: T) => void
  #heap: Entry<T>[] = []
  #seq = 0
  #timer: NodeJS.Timeout | undefined
  #timerDue = Number.POSITIVE_INFINITY
  #suspended = false

  constructor(onDue: (item: T) => void) {
    this.#onDue = onDue
  }

  /** Number of items waiting. */
  get size(): number {
    return this.#heap.length
  }

  /** Schedule `item` for `due` (ms since epoch). */
  push(due: number, item: T): void {
    const heap = this.#heap
    heap.push({ due, seq: this.#seq++, item })
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(heap[i]!, heap[parent]!)) break
      swap(heap, i, parent)
      i = parent
    }
    if (i === 0) this.#arm()
  }

  /** Remove every item; returns them in no particular order. */
  clear(): T[] {
    const items = this.#heap.map((entry) => entry.item)
    this.#heap = []
    this.#arm()
    return items
  }

  /** Stop the timer (items stay) until {@link resume}. */
  suspend(): void {
    this.#suspended = true
    this.#arm()
  }

  /** Re-arm the timer after {@link suspend}; items that fell due meanwhile run on the next tick. */
  resume(): void {
    this.#suspended = false
    this.#arm()
  }

  #pop(): Entry<T> | undefined {
    const heap = this.#heap
    const top = heap[0]
    const last = heap.pop()
    if (top === undefined || last === undefined || heap.length === 0) return top
    heap[0] = last
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      const right = left + 1
      let smallest = i
      if (left < heap.length && before(heap[left]!, heap[smallest]!)) smallest = left
      if (right < heap.length && before(heap[right]!, heap[smallest]!)) smallest = right
      if (smallest === i) break
      swap(heap, i, smallest)
      i = smallest
    }
    return top
  }

  #arm(): void {
    const first = this.#heap[0]
    const due = this.#suspended || first === undefined ? Number.POSITIVE_INFINITY : first.due
    if (due === this.#timerDue && this.#timer !== undefined) return
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#timerDue = due
    if (due === Number.POSITIVE_INFINITY) return
    const wait = Math.min(Math.max(due - Date.now(), 0), MAX_TIMER_MS)
    this.#timer = setTimeout(() => this.#fire(), wait)
    this.#timer.unref()
  }

  #fire(): void {
    this.#timer = undefined
    this.#timerDue = Number.POSITIVE_INFINITY
    const now = Date.now()
    while (!this.#suspended && this.#heap.length > 0 && this.#heap[0]!.due <= now) {
      const entry = this.#pop()!
      this.#onDue(entry.item)
    }
    this.#arm()
  }
}

function before<T>(a: Entry<T>, b: Entry<T>): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq)
}

function swap<T>(heap: T[], i: number, j: number): void {
  const tmp = heap[i]!
  heap[i] = heap[j]!
  heap[j] = tmp
}
