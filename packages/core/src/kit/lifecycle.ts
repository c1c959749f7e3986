import { ClosedError } from '../errors.js'

/** Where a store connection is in its life. */
export type LifecycleState = 'new' | 'connecting' | 'open' | 'closed'

/**
 * Connect once, close once, and refuse calls after close: the rules every broker and result
 * backend follows, written once (kysely's `RuntimeDriver` plays this part for its drivers).
 *
 * - `connect` runs the adapter's open step once; concurrent calls share it; a failed connect may
 *   be tried again; `connect` after `close` rejects with `ERR_CLOSED`.
 * - `close` runs the shut-down step once (after a connect on its way settles), and is idempotent;
 *   from its first call on, {@link Lifecycle.assertOpen} throws `ERR_CLOSED`, so nothing new
 *   starts while the store shuts down.
 */
export class Lifecycle {
  readonly #adapter: string
  readonly #what: string
  #state: LifecycleState = 'new'
  #connecting: Promise<void> | undefined
  #closing: Promise<void> | undefined

  /** `adapter` and `what` (`broker`, `result backend`) name the store in errors. */
  constructor(adapter: string, what = 'broker') {
    this.#adapter = adapter
    this.#what = what
  }

  /** Where the connection is. */
  get state(): LifecycleState {
    return this.#state
  }

  /** True once `close` was called. */
  get closed(): boolean {
    return this.#state === 'closed'
  }

  /** Run `open` unless it ran (or is running) already. */
  connect(open: () => Promise<void>): Promise<void> {
    if (this.#state === 'closed') return Promise.reject(this.closedError('connect'))
    if (this.#state === 'open') return Promise.resolve()
    if (this.#connecting !== undefined) return this.#connecting
    this.#state = 'connecting'
    const connecting = open().then(
      () => {
        this.#connecting = undefined
        if (this.#state === 'connecting') this.#state = 'open'
      },
      (err: unknown) => {
        this.#connecting = undefined
        if (this.#state === 'connecting') this.#state = 'new'
        throw err
      },
    )
    this.#connecting = connecting
    return connecting
  }

  /**
   * Wait for a `connect` already on its way, without starting one: the connect's own promise
   * (rejecting as it does), or a resolved one when none is on its way (not connected yet, open,
   * or closed). For calls that need what `open` sets up (a LISTEN connection) when a connect is
   * racing them, but must not connect by themselves.
   */
  pendingConnect(): Promise<void> {
    return this.#connecting ?? Promise.resolve()
  }

  /**
   * Mark the store closed and run `shutdown` once (after a connect on its way settled). Later
   * calls share the first one's outcome.
   */
  close(shutdown: () => Promise<void>): Promise<void> {
    if (this.#closing !== undefined) return this.#closing
    const connecting = this.#connecting
    this.#state = 'closed'
    this.#closing = (async () => {
      if (connecting !== undefined) await connecting.catch(() => undefined)
      await shutdown()
    })()
    return this.#closing
  }

  /** Throws `ERR_CLOSED` naming `what` once `close` was called. */
  assertOpen(what: string): void {
    if (this.#state === 'closed') throw this.closedError(what)
  }

  /** The `ERR_CLOSED` error for a call named `what`. */
  closedError(what: string): ClosedError {
    return new ClosedError(`cannot ${what}: the ${this.#what} is closed`, { adapter: this.#adapter })
  }
}
