interface Waiter<T> {
  readonly resolve: (value: T) => void
  readonly reject: (err: unknown) => void
}

/** What a {@link WaitRegistry} tells its store about the ids it waits for. */
export interface WaitRegistryHooks {
  /** `id` got its first waiter: start watching it (subscribe to its wake-ups). */
  watch?(id: string): void
  /** `id` lost its last waiter (settled, aborted or closed) and left the registry: stop watching. */
  unwatch?(id: string): void
}

/**
 * The pending `waitFor` calls of one result backend, by task id: the bookkeeping every store's
 * `waitFor` shares, whatever wakes it (NOTIFY, a change feed, pub/sub). A store registers a
 * waiter, then reads the record, and settles every waiter of an id at once when it sees the id
 * final ({@link WaitRegistry.resolve}) or failed ({@link WaitRegistry.reject}). An aborted
 * signal rejects its own waiter with the signal's reason; {@link WaitRegistry.closeAll} rejects
 * all of them (and every later wait) with the backend's `ERR_CLOSED`.
 *
 * @example
 * ```ts
 * const waiting = this.waiters.wait(id, signal) // registered before the read
 * this.check(id) // reads; resolve(id, record) once final
 * return waiting
 * ```
 */
export class WaitRegistry<T> {
  readonly #byId = new Map<string, Set<Waiter<T>>>()
  readonly #hooks: WaitRegistryHooks
  readonly #aborts = new WeakMap<AbortSignal, { callbacks: Set<() => void>; handler: () => void }>()
  #closed: Error | undefined

  constructor(hooks: WaitRegistryHooks = {}) {
    this.#hooks = hooks
  }

  /** True once {@link WaitRegistry.closeAll} ran. */
  get closed(): boolean {
    return this.#closed !== undefined
  }

  /** How many ids have waiters. */
  get size(): number {
    return this.#byId.size
  }

  /** True when `id` has waiters. */
  has(id: string): boolean {
    return this.#byId.has(id)
  }

  /** The ids with waiters (a copy: settling while iterating is safe). */
  ids(): string[] {
    return [...this.#byId.keys()]
  }

  /**
   * Register a waiter for `id`, synchronously (a read after this call cannot miss a wake-up).
   * Rejects at once with the signal's reason when it is aborted, or with the close error after
   * {@link WaitRegistry.closeAll}.
   */
  wait(id: string, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason)
    if (this.#closed !== undefined) return Promise.reject(this.#closed)
    return new Promise<T>((resolve, reject) => {
      const stopAbort = this.#onAbort(signal, () => {
        this.#remove(id, waiter)
        reject(signal?.reason)
      })
      const waiter: Waiter<T> = {
        resolve: (value) => {
          stopAbort()
          resolve(value)
        },
        reject: (err) => {
          stopAbort()
          reject(err)
        },
      }
      const set = this.#byId.get(id)
      if (set !== undefined) {
        set.add(waiter)
        return
      }
      this.#byId.set(id, new Set([waiter]))
      // After the waiter is in: a hook that reads (and settles the id) at once must find it.
      this.#hooks.watch?.(id)
    })
  }

  /** Resolve every waiter of `id` with `value` (nothing when none waits). */
  resolve(id: string, value: T): void {
    for (const waiter of this.#take(id)) waiter.resolve(value)
  }

  /** Reject every waiter of `id` with `err` (nothing when none waits). */
  reject(id: string, err: unknown): void {
    for (const waiter of this.#take(id)) waiter.reject(err)
  }

  /** Reject every waiter, and every later wait, with `err` (the backend's `ERR_CLOSED`). */
  closeAll(err: Error): void {
    this.#closed ??= err
    for (const id of this.ids()) this.reject(id, this.#closed)
  }

  /**
   * One 'abort' listener per signal however many waits share it (a caller may wait for a whole
   * group with one signal: a listener each would pile up). Returns the unregister function.
   */
  #onAbort(signal: AbortSignal | undefined, callback: () => void): () => void {
    if (signal === undefined) return () => {}
    let entry = this.#aborts.get(signal)
    if (entry === undefined) {
      const callbacks = new Set<() => void>()
      const handler = (): void => {
        this.#aborts.delete(signal)
        for (const cb of [...callbacks]) cb()
      }
      signal.addEventListener('abort', handler, { once: true })
      entry = { callbacks, handler }
      this.#aborts.set(signal, entry)
    }
    const { callbacks, handler } = entry
    callbacks.add(callback)
    return () => {
      callbacks.delete(callback)
      if (callbacks.size > 0) return
      signal.removeEventListener('abort', handler)
      this.#aborts.delete(signal)
    }
  }

  #take(id: string): Set<Waiter<T>> {
    const set = this.#byId.get(id)
    if (set === undefined) return new Set()
    this.#byId.delete(id)
    this.#hooks.unwatch?.(id)
    return set
  }

  #remove(id: string, waiter: Waiter<T>): void {
    const set = this.#byId.get(id)
    if (set === undefined) return
    set.delete(waiter)
    if (set.size === 0) this.#take(id)
  }
}
