import type { BackendEventSubscription, EventStreamItem, TaskEvent } from './events.js'
import { Deque } from './memory/deque.js'

/** Default of `EventsOptions.bufferSize`. */
export const DEFAULT_EVENT_BUFFER = 1000

/** Called with each event of an {@link EventStream}, as it arrives. */
export type EventListener = (event: TaskEvent) => void

/**
 * A live subscription to task events, made by `app.events()`. Read it as an async iterator (`for
 * await`), or with `on(listener)`; `close()` (or the `signal` given to `app.events`) ends both.
 *
 * Slow readers: the iterator holds at most `bufferSize` items. When an event arrives with the
 * buffer full, the oldest buffered event is dropped and an {@link EventsDropped} marker in its
 * place counts what was lost, so memory stays bounded and the store's connection (which other
 * subscribers share) is never held up. We chose dropping over backpressure because the source is
 * a shared broadcast (a Redis stream read, a Postgres LISTEN): pausing it for one reader would
 * stall the others, and a dashboard wants the newest events, not a growing backlog. Listeners
 * added with `on()` are called synchronously and never drop.
 *
 * @example
 * ```ts
 * const events = await app.events({ queues: ['emails'], types: ['failed'] })
 * for await (const e of events) {
 *   if (e.type === 'dropped') console.warn(`missed ${e.count} events`)
 *   else console.log(e.type, e.task, e.id, e.error.message)
 * }
 * ```
 */
export class EventStream implements AsyncIterable<EventStreamItem> {
  readonly #buffer = new Deque<EventStreamItem>()
  readonly #bufferSize: number
  readonly #listeners = new Set<EventListener>()
  #wake: (() => void) | undefined
  #subscription: BackendEventSubscription | undefined
  #closed: Promise<void> | undefined
  #done = false
  #dropped = 0
  #onAbort: (() => void) | undefined
  #signal: AbortSignal | undefined
  #whenClosed: (() => void) | undefined

  /** @internal Made by `app.events()`. */
  constructor(bufferSize = DEFAULT_EVENT_BUFFER, signal?: AbortSignal) {
    this.#bufferSize = Math.max(1, bufferSize)
    if (signal) {
      this.#signal = signal
      this.#onAbort = () => void this.close()
      signal.addEventListener('abort', this.#onAbort, { once: true })
    }
  }

  /** Events dropped so far because the iterator's reader was behind. */
  get dropped(): number {
    return this.#dropped
  }

  /** True once closed (by `close()`, the signal, or the app closing). */
  get closed(): boolean {
    return this.#done
  }

  /** @internal The backend subscription this stream reads from (closed with it). */
  attach(subscription: BackendEventSubscription): void {
    if (this.#done) void subscription.close()
    else this.#subscription = subscription
  }

  /** @internal Called once when the stream closes (the app forgets it). */
  onClosed(fn: () => void): void {
    if (this.#done) fn()
    else this.#whenClosed = fn
  }

  /** @internal Deliver one event (from the backend's subscription). */
  push(event: TaskEvent): void {
    if (this.#done) return
    for (const listener of this.#listeners) {
      try {
        listener(event)
      } catch {
        // A listener's own bug must not stop delivery to the others or to the iterator.
      }
    }
    if (this.#buffer.size >= this.#bufferSize) this.#dropOldest()
    this.#buffer.push(event)
    this.#wakeReader()
  }

  /** Call `listener` with every event from now on; returns a function that removes it. */
  on(listener: EventListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** End the subscription: the iterator returns after what it holds, listeners are no longer called. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#done = true
      this.#listeners.clear()
      if (this.#onAbort) this.#signal?.removeEventListener('abort', this.#onAbort)
      this.#wakeReader()
      this.#whenClosed?.()
      await this.#subscription?.close()
    })()
    return this.#closed
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<EventStreamItem, void, undefined> {
    try {
      for (;;) {
        const item = this.#buffer.shift()
        if (item !== undefined) {
          yield item
          continue
        }
        if (this.#done) return
        await new Promise<void>((resolve) => {
          this.#wake = resolve
        })
      }
    } finally {
      // A `break` out of `for await` ends the subscription, as it does for a Node stream.
      await this.close()
    }
  }

  #wakeReader(): void {
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
  }

  /** Replace the oldest buffered event by (or fold it into) a dropped marker at the head. */
  #dropOldest(): void {
    const first = this.#buffer.shift()
    if (first === undefined) return
    const lost = first.type === 'dropped' ? first.count : 1
    this.#dropped += first.type === 'dropped' ? 0 : 1
    const next = this.#buffer.shift()
    if (next === undefined) {
      this.#buffer.unshift({ type: 'dropped', count: lost, at: Date.now() })
      return
    }
    if (next.type === 'dropped') {
      this.#buffer.unshift({ type: 'dropped', count: next.count + lost, at: next.at })
      return
    }
    // `next` is an event: it is dropped too, so the marker keeps a slot and the size shrinks by one.
    this.#dropped++
    this.#buffer.unshift({ type: 'dropped', count: lost + 1, at: Date.now() })
  }
}
