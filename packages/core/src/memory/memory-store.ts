import { MemoryEvents } from './memory-events.js'
import { MemoryFlow } from './memory-flow.js'
import { MemoryQueue } from './memory-queue.js'
import { MemoryResults } from './memory-results.js'

const named = new Map<string, MemoryStore>()

/**
 * The shared state behind {@link MemoryBroker} and {@link MemoryResultBackend}: queues, dead
 * letters, task records, group counters and claims, events, and flow control (rate limits,
 * concurrency slots, paused queues). Several brokers and backends opened on one store behave
 * like several connections to one server: a message one broker leaves unsettled when it closes
 * is redelivered to another.
 *
 * `MemoryStore.named(name)` returns the process-wide store of that name (what `memory://name`
 * opens); `new MemoryStore()` makes a private one. Timers run only while at least one broker or
 * backend is open on the store, and never keep the process alive by themselves.
 *
 * @example
 * ```ts
 * const store = new MemoryStore()
 * const a = new MemoryBroker({ store })
 * const b = new MemoryBroker({ store })   // a second "connection" to the same queues
 * ```
 */
export class MemoryStore {
  /** Label used in messages; `named()` stores carry their name. */
  readonly name: string
  /** Task records, group counters and claims. */
  readonly results = new MemoryResults()
  /** Task events: the last 1000 per queue, and live listeners. */
  readonly events = new MemoryEvents()
  /** Flow control: rate logs, concurrency slots and paused queues. */
  readonly flow = new MemoryFlow()
  readonly #queues = new Map<string, MemoryQueue>()
  #clients = 0

  /** A private store; `name` only labels it (default `anonymous`). */
  constructor(name = 'anonymous') {
    this.name = name
    this.results.suspend()
  }

  /** The process-wide store called `name` (default `default`), created on first use. */
  static named(name = 'default'): MemoryStore {
    let store = named.get(name)
    if (store === undefined) {
      store = new MemoryStore(name)
      named.set(name, store)
    }
    return store
  }

  /** The queue called `name`, created on first use. */
  queue(name: string): MemoryQueue {
    let queue = this.#queues.get(name)
    if (queue === undefined) {
      queue = new MemoryQueue(name)
      this.#queues.set(name, queue)
      if (this.#clients === 0) queue.suspend()
    }
    return queue
  }

  /** Names of the queues created so far, sorted. */
  queueNames(): string[] {
    return [...this.#queues.keys()].sort()
  }

  /** Number of brokers and backends currently open on this store. */
  get clients(): number {
    return this.#clients
  }

  /** A broker or backend opened on this store: timers run. */
  attach(): void {
    if (this.#clients++ > 0) return
    for (const queue of this.#queues.values()) queue.resume()
    this.results.resume()
  }

  /** A broker or backend closed: the last one out stops the timers. */
  detach(): void {
    if (this.#clients === 0 || --this.#clients > 0) return
    for (const queue of this.#queues.values()) queue.suspend()
    this.results.suspend()
  }
}
