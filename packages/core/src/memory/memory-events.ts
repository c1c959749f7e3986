import {
  type BackendEventSubscription,
  type EventFilter,
  type EventStore,
  matchesFilter,
  type TaskEvent,
} from '../events.js'
import { Deque } from './deque.js'

/** Events kept per queue for `recentEvents` by default. */
export const DEFAULT_MEMORY_EVENT_RETENTION = 1000

interface Listener {
  readonly filter: EventFilter
  readonly onEvent: (event: TaskEvent) => void
}

/**
 * Task events in this process: the last `retention` events of each queue for history, and
 * listeners called synchronously by `publishEvents`. Shared by every backend on one
 * `MemoryStore`, so two apps on `memory://` in one process see each other's events. Events are
 * kept as JSON and handed out as copies (listeners share one frozen copy per event): nobody can
 * change what another reader sees.
 */
export class MemoryEvents implements EventStore {
  readonly #queues = new Map<string, Deque<string>>()
  readonly #listeners = new Set<Listener>()
  readonly #retention: number

  constructor(retention = DEFAULT_MEMORY_EVENT_RETENTION) {
    this.#retention = retention
  }

  /** Store and broadcast, in order. */
  async publishEvents(events: readonly TaskEvent[]): Promise<void> {
    for (const original of events) {
      // Kept as JSON: a copy the publisher cannot change, and the only cost when nobody listens
      // (parsing it for every event made the memory bench's sends about a third slower).
      const json = JSON.stringify(original)
      let ring = this.#queues.get(original.queue)
      if (ring === undefined) {
        ring = new Deque()
        this.#queues.set(original.queue, ring)
      }
      ring.push(json)
      while (ring.size > this.#retention) ring.shift()
      let event: TaskEvent | undefined
      for (const listener of this.#listeners) {
        if (!matchesFilter(original, listener.filter)) continue
        event ??= Object.freeze(JSON.parse(json) as TaskEvent)
        try {
          listener.onEvent(event)
        } catch {
          // A subscriber's bug is its own; the publisher and the other subscribers go on.
        }
      }
    }
  }

  /** Live at once. */
  async subscribeEvents(
    filter: EventFilter,
    onEvent: (event: TaskEvent) => void,
  ): Promise<BackendEventSubscription> {
    const listener: Listener = { filter: { ...filter }, onEvent }
    this.#listeners.add(listener)
    return {
      close: async () => {
        this.#listeners.delete(listener)
      },
    }
  }

  /** The last `limit` events of `queue`, oldest first. */
  async recentEvents(queue: string, limit: number): Promise<TaskEvent[]> {
    const ring = this.#queues.get(queue)
    if (ring === undefined || limit <= 0) return []
    const all = ring.toArray()
    return all.slice(Math.max(0, all.length - limit)).map((json) => JSON.parse(json) as TaskEvent)
  }
}
