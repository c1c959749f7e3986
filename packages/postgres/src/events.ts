import {
  type BackendEventSubscription,
  type EventFilter,
  type EventStore,
  matchesFilter,
  parseTaskEvent,
  type TaskEvent,
} from '@errand/core'
import type { Db } from './connection.js'
import type { ChannelHandler, Listener } from './listener.js'
import { eventsChannel, quoteSchema } from './migrations.js'

/** Default events kept per queue. */
export const DEFAULT_EVENT_RETENTION = 1000
/** NOTIFY payloads must stay under 8000 bytes; longer events are fetched by id instead. */
const MAX_PAYLOAD = 7900

interface Subscriber {
  readonly filter: EventFilter
  readonly onEvent: (event: TaskEvent) => void
}

/**
 * Task events on PostgreSQL: one INSERT of the batch into `events` whose statement also NOTIFYs
 * each event (`<id> <JSON>`) on the schema's events channel, in order. NOTIFY is delivered in
 * commit order, so live readers see events as they were written without reading the table; an
 * event too long for a NOTIFY payload (over ~7.9 KB) is announced by id and read back. History
 * (`recentEvents`) reads the table. Each writer trims the queues it writes to back to the
 * retention once it has added a tenth of it (at least 10) to a queue: one small DELETE, at the
 * end of the `publishEvents` call that crossed the mark.
 */
export class PostgresEvents implements EventStore {
  readonly #db: Db
  readonly #listener: Listener
  readonly #channel: string
  readonly #retention: number
  readonly #insert: string
  readonly #recent: string
  readonly #byId: string
  readonly #trim: string
  readonly #prefix: string
  readonly #subscribers = new Set<Subscriber>()
  readonly #sinceTrim = new Map<string, number>()
  #trimming: Promise<void> = Promise.resolve()

  constructor(db: Db, listener: Listener, schema: string, retention: number) {
    this.#db = db
    this.#listener = listener
    this.#channel = eventsChannel(schema)
    this.#retention = retention
    this.#prefix = `errand_${schema}_e_`
    const s = quoteSchema(schema)
    // The payload is `<id> <json>`, or `<id>` when it would not fit in a NOTIFY. A volatile
    // function in the select list runs after the ORDER BY, so the NOTIFYs go out in id order.
    this.#insert = `WITH ins AS (
        INSERT INTO ${s}.events (queue, body)
        SELECT q, b FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(q, b, n) ORDER BY n
        RETURNING id, body)
      SELECT pg_notify($3, CASE WHEN octet_length(body) < ${MAX_PAYLOAD} THEN id || ' ' || body
        ELSE id::text END) FROM ins ORDER BY id`
    this.#recent = `SELECT body FROM ${s}.events WHERE queue = $1 ORDER BY id DESC LIMIT $2`
    this.#byId = `SELECT body FROM ${s}.events WHERE id = $1`
    this.#trim = `DELETE FROM ${s}.events WHERE queue = $1 AND id <= (
        SELECT id FROM ${s}.events WHERE queue = $1 ORDER BY id DESC OFFSET $2 LIMIT 1)`
  }

  /** Insert and NOTIFY a batch in one statement (one round trip); trim in the background. */
  async publishEvents(events: readonly TaskEvent[]): Promise<void> {
    if (events.length === 0) return
    await this.#db.query(
      {
        name: `${this.#prefix}publish`,
        text: this.#insert,
        values: [events.map((e) => e.queue), events.map((e) => JSON.stringify(e)), this.#channel],
      },
      // Not replayed after a lost connection: the batch may have committed (events are best effort).
      'connect',
    )
    const every = Math.max(10, Math.floor(this.#retention / 10))
    const due = new Set<string>()
    for (const event of events) {
      const n = (this.#sinceTrim.get(event.queue) ?? 0) + 1
      this.#sinceTrim.set(event.queue, n)
      if (n >= every) {
        this.#sinceTrim.set(event.queue, 0)
        due.add(event.queue)
      }
    }
    // Awaited, so a writer never runs ahead of its own trimming: publishEvents is off the hot
    // path (the sink calls it in the background), and this is one DELETE per tenth of the retention.
    for (const queue of due) this.#trimLater(queue)
    if (due.size > 0) await this.#trimming
  }

  /** Live from now on: resolves once the events channel is LISTENed on. */
  async subscribeEvents(
    filter: EventFilter,
    onEvent: (event: TaskEvent) => void,
  ): Promise<BackendEventSubscription> {
    const subscriber: Subscriber = { filter: { ...filter }, onEvent }
    this.#subscribers.add(subscriber)
    if (this.#subscribers.size === 1) await this.#listener.listen(this.#channel, this.#onNotify)
    return {
      close: async () => {
        if (!this.#subscribers.delete(subscriber)) return
        if (this.#subscribers.size === 0) await this.#listener.unlisten(this.#channel, this.#onNotify)
      },
    }
  }

  /** The last `limit` events of `queue`, oldest first. */
  async recentEvents(queue: string, limit: number): Promise<TaskEvent[]> {
    if (limit <= 0) return []
    const res = await this.#db.query<{ body: string }>(
      { name: `${this.#prefix}recent`, text: this.#recent, values: [queue, limit] },
      'idempotent',
    )
    const out: TaskEvent[] = []
    for (let i = res.rows.length - 1; i >= 0; i--) {
      const event = parseTaskEvent((res.rows[i] as { body: string }).body)
      if (event !== undefined) out.push(event)
    }
    return out
  }

  /** Trim every queue this instance wrote to now (tests, shutdown); resolves when done. */
  async trim(): Promise<void> {
    for (const queue of this.#sinceTrim.keys()) this.#trimLater(queue)
    await this.#trimming
  }

  /** Waits for a trim in flight (the backend closes). */
  async close(): Promise<void> {
    this.#subscribers.clear()
    await this.#trimming
  }

  /** One trim at a time, chained: a burst of batches does not pile up DELETEs. */
  #trimLater(queue: string): void {
    this.#trimming = this.#trimming.then(async () => {
      if (this.#db.isClosed) return
      try {
        await this.#db.query(
          { name: `${this.#prefix}trim`, text: this.#trim, values: [queue, this.#retention] },
          'idempotent',
        )
      } catch (err) {
        this.#db.logger.warn(`trimming task events of queue "${queue}" failed: ${(err as Error).message}`)
      }
    })
  }

  readonly #onNotify: ChannelHandler = (payload) => {
    // undefined: the LISTEN connection was re-established; events meanwhile are lost (best effort).
    if (payload === undefined) return
    const space = payload.indexOf(' ')
    if (space >= 0) {
      this.#deliver(parseTaskEvent(payload.slice(space + 1)))
      return
    }
    // Too long for a NOTIFY: read it back. Order among such events is kept by this chain.
    this.#fetching = this.#fetching.then(async () => {
      try {
        const res = await this.#db.query<{ body: string }>(
          { name: `${this.#prefix}by_id`, text: this.#byId, values: [payload] },
          'idempotent',
        )
        const body = res.rows[0]?.body
        if (body !== undefined) this.#deliver(parseTaskEvent(body))
      } catch (err) {
        this.#db.logger.warn(`reading a task event failed: ${(err as Error).message}`)
      }
    })
  }

  #fetching: Promise<void> = Promise.resolve()

  #deliver(event: TaskEvent | undefined): void {
    if (event === undefined) return
    for (const s of this.#subscribers) {
      if (!matchesFilter(event, s.filter)) continue
      try {
        s.onEvent(event)
      } catch {
        // A subscriber's bug is its own; the others still get the event.
      }
    }
  }
}
