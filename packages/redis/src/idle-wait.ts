import type { Connections } from './connection.js'
import type { RedisClient } from './options.js'

/** Longest blocking wait before looking again even when nothing is known to be due (a safety net). */
const MAX_WAIT_MS = 30_000
/** Longest timer Node takes. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** What an idle consumer does when woken. */
export interface IdleWaitEvents {
  /** The ready list holds something (the latency path of an idle queue: fetch at once). */
  readonly ready: () => void
  /** The next delayed message or lease deadline is due. */
  readonly due: () => void
  /** The blocking wait failed (the connection dropped): back off. */
  readonly failed: (err: unknown) => void
}

/**
 * How an idle consumer waits without polling: parked on its own blocking connection
 * (`BLMOVE ready ready RIGHT RIGHT timeout`: returns as soon as the ready list holds anything,
 * without taking it), plus a timer for the next delayed message or lease deadline.
 */
export class IdleWait {
  readonly #conns: Connections
  readonly #readyKey: string
  readonly #on: IdleWaitEvents
  #blocking: RedisClient | undefined
  #due: NodeJS.Timeout | undefined
  #waiting = false
  #stopped = false

  constructor(conns: Connections, readyKey: string, on: IdleWaitEvents) {
    this.#conns = conns
    this.#readyKey = readyKey
    this.#on = on
  }

  /** True while parked on the blocking connection. */
  get waiting(): boolean {
    return this.#waiting
  }

  /** Connect the blocking connection now, so the first wait is parked without delay. */
  start(): void {
    this.#blocking = this.#conns.duplicate()
    this.#blocking.connect().catch(() => {})
  }

  /** Stop waiting for good (a parked command rejects as its connection closes). */
  stop(): void {
    this.#stopped = true
    clearTimeout(this.#due)
    if (this.#blocking !== undefined) this.#conns.drop(this.#blocking)
    this.#blocking = undefined
  }

  /**
   * Call `due` in `waitMs` (the next delayed message or lease deadline; -1: none). A timer of our
   * own rather than the blocking command's timeout: a parked command cannot be shortened when a
   * later round trip learns of an earlier due time.
   */
  wakeIn(waitMs: number): void {
    clearTimeout(this.#due)
    this.#due = undefined
    if (waitMs < 0 || this.#stopped) return
    this.#due = setTimeout(
      () => {
        this.#due = undefined
        this.#on.due()
      },
      Math.min(waitMs, MAX_TIMER_MS),
    )
  }

  /** Park on the blocking connection until the ready list holds something. */
  park(): void {
    if (this.#waiting || this.#stopped) return
    this.#waiting = true
    this.#blocking ??= this.#conns.duplicate()
    const ready = this.#readyKey
    this.#blocking.blmove(ready, ready, 'RIGHT', 'RIGHT', MAX_WAIT_MS / 1000).then(
      () => {
        this.#waiting = false
        this.#on.ready()
      },
      (err: unknown) => {
        this.#waiting = false
        this.#on.failed(err)
      },
    )
  }
}
