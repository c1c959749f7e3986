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
      const onAbort = (): void => {
        this.#remove(id, waiter)
        reject(signal?.reason)
      }
      const waiter: Waiter<T> = {
        resolve: (value) => {
          signal?.removeEventListener('abort', onAbort)
          resolve(value)
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort)
          reject(err)
        },
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      let set = this.#byId.get(id)
      if (set === undefined) {
        set = new Set()
        this.#byId.set(id, set)
        this.#hooks.watch?.(id)
      }
      set.add(waiter)
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
