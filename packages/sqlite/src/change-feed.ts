/** Smallest pause between two looks for other processes' writes (ms). */
const MIN_POLL_MS = 5

/**
 * How the instances of one process learn that the database changed, without LISTEN:
 *
 * - **In this process** every write that can wake someone (a publish, a returned delivery, a
 *   final state) is announced here synchronously by name: no polling, no delay.
 * - **Other processes** are seen through `PRAGMA data_version`, which changes when another
 *   connection commits. Reading it touches no table (it compares a counter in the WAL index), so
 *   looking every few ms costs next to nothing. While nothing changes the pause doubles from 5 ms
 *   up to the smallest `pollIntervalMs` of its listeners; a change found resets it.
 */
export class ChangeFeed {
  readonly #byName = new Map<string, Set<() => void>>()
  readonly #external = new Map<() => void, number>()
  readonly #readVersion: (() => number) | undefined
  #version = 0
  #timer: NodeJS.Timeout | undefined
  #pause = MIN_POLL_MS

  /** `readVersion`: reads `PRAGMA data_version`; undefined for a database no other process sees. */
  constructor(readVersion: (() => number) | undefined) {
    this.#readVersion = readVersion
  }

  /** Calls `listener` whenever `name` is announced in this process. Returns an unsubscribe. */
  on(name: string, listener: () => void): () => void {
    let set = this.#byName.get(name)
    if (set === undefined) {
      set = new Set()
      this.#byName.set(name, set)
    }
    set.add(listener)
    return () => {
      const current = this.#byName.get(name)
      current?.delete(listener)
      if (current?.size === 0) this.#byName.delete(name)
    }
  }

  /** Announces a change of `name` to this process's listeners (synchronously). */
  emit(name: string): void {
    const set = this.#byName.get(name)
    if (set === undefined) return
    for (const listener of [...set]) listener()
  }

  /**
   * Calls `listener` when another process may have changed the database, looking at most every
   * `maxPauseMs` while idle. Returns an unsubscribe.
   */
  onExternal(listener: () => void, maxPauseMs: number): () => void {
    this.#external.set(listener, maxPauseMs)
    if (this.#readVersion !== undefined && this.#timer === undefined) {
      this.#version = this.#readVersion()
      this.#pause = MIN_POLL_MS
      this.#arm()
    }
    return () => {
      this.#external.delete(listener)
      if (this.#external.size === 0) this.stop()
    }
  }

  /** Stops looking (the connection is closing). */
  stop(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #arm(): void {
    this.#timer = setTimeout(() => this.#look(), this.#pause)
    // The consumers hold the process open themselves; a poll alone should not.
    this.#timer.unref()
  }

  #look(): void {
    this.#timer = undefined
    if (this.#external.size === 0 || this.#readVersion === undefined) return
    let version: number
    try {
      version = this.#readVersion()
    } catch {
      version = this.#version + 1 // cannot tell: let the listeners look (and report errors)
    }
    if (version !== this.#version) {
      this.#version = version
      this.#pause = MIN_POLL_MS
      for (const listener of [...this.#external.keys()]) listener()
    } else {
      this.#pause = Math.max(MIN_POLL_MS, Math.min(this.#pause * 2, this.#minPause()))
    }
    if (this.#external.size > 0 && this.#timer === undefined) this.#arm()
  }

  /** The shortest `maxPauseMs` any listener asked for. */
  #minPause(): number {
    let min = Number.POSITIVE_INFINITY
    for (const pause of this.#external.values()) min = Math.min(min, pause)
    return min
  }
}
