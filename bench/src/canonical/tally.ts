import type { Payload } from './types.js'

/** Counts each job number; `until(k)` resolves when k distinct jobs were seen. */
export class Tally {
  readonly seen: Uint8Array
  handled = 0
  distinct = 0
  duplicates = 0
  private waiters: { k: number; resolve: () => void }[] = []
  constructor(total: number) {
    this.seen = new Uint8Array(total)
  }
  /** A handler took job `p` (the shape every contender's handler is given). */
  on = (p: Payload): void => this.see(p.n)
  /** Job number `n` was handled once more. */
  see(n: number): void {
    this.handled++
    if (n < 0 || n >= this.seen.length) return
    if (this.seen[n]) {
      this.duplicates++
      return
    }
    this.seen[n] = 1
    this.distinct++
    if (this.waiters.length > 0) {
      const ready = this.waiters.filter((w) => this.distinct >= w.k)
      this.waiters = this.waiters.filter((w) => this.distinct < w.k)
      for (const w of ready) w.resolve()
    }
  }
  /** Resolves true once `k` distinct jobs were seen, false after `timeoutMs`. */
  until(k: number, timeoutMs: number): Promise<boolean> {
    if (this.distinct >= k) return Promise.resolve(true)
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs)
      this.waiters.push({
        k,
        resolve: () => {
          clearTimeout(timer)
          resolve(true)
        },
      })
    })
  }
}
