import {
  type BackendEventSubscription,
  type EventFilter,
  type EventStore,
  matchesFilter,
  parseTaskEvent,
  reconnectDelay,
  type TaskEvent,
} from '@errand/core'
import type { Connections } from './connection.js'
import { LuaScript } from './lua.js'
import type { RedisClient } from './options.js'

/**
 * Append a batch of events. KEYS: the queues' streams, then the all-queues stream (last).
 * ARGV: retention, all-queues retention (entries), stream TTL ms, then per event its key index
 * (1-based) and JSON. Each event is one entry of its queue's stream (history counts events); the
 * whole batch is one entry of the all-queues stream (live readers), so a batch of n events costs
 * n + 1 XADDs inside one script call: one command to build and parse on the client, one round trip.
 */
const APPEND = new LuaScript(`
local all = {}
local touched = {}
for i = 4, #ARGV, 2 do
  local k = tonumber(ARGV[i])
  redis.call('XADD', KEYS[k], '*', 'e', ARGV[i + 1])
  touched[k] = true
  all[#all + 1] = 'e'
  all[#all + 1] = ARGV[i + 1]
end
-- Trimmed once per stream and batch (the same bound, checked once instead of per event).
for k in pairs(touched) do
  redis.call('XTRIM', KEYS[k], 'MAXLEN', '~', ARGV[1])
  redis.call('PEXPIRE', KEYS[k], ARGV[3])
end
redis.call('XADD', KEYS[#KEYS], 'MAXLEN', '~', ARGV[2], '*', unpack(all))
redis.call('PEXPIRE', KEYS[#KEYS], ARGV[3])
return #all / 2
`)

/** Default events kept per queue (`XADD … MAXLEN ~`). */
export const DEFAULT_EVENT_RETENTION = 1000
/** The all-queues stream that live subscribers read keeps this many times the per-queue retention. */
const ALL_STREAM_FACTOR = 10
/** A queue's stream expires this long after its last event (a queue that is gone leaves no key behind). */
const STREAM_TTL_MS = 7 * 86_400_000
/** Events per script call (the script unpacks a batch into one XADD: Lua's stack has limits). */
const SCRIPT_BATCH = 500
/** Entries one XREAD returns at most. */
const READ_COUNT = 500
/** How long one XREAD blocks (the loop re-checks for subscriptions between reads). */
const BLOCK_MS = 2000

interface Subscriber {
  readonly filter: EventFilter
  readonly onEvent: (event: TaskEvent) => void
  /** Deliver only entries after this stream id (the top of the stream when it subscribed). */
  readonly from: StreamId
}

type StreamId = readonly [number, number]

function parseId(id: string): StreamId {
  const dash = id.indexOf('-')
  return [Number(id.slice(0, dash)), Number(id.slice(dash + 1))]
}

function after(a: StreamId, b: StreamId): boolean {
  return a[0] > b[0] || (a[0] === b[0] && a[1] > b[1])
}

/** Stream keys: one per queue (hash-tagged like the queue's keys), one for all queues. */
export interface EventKeys {
  queue(queue: string): string
  readonly all: string
}

/** Event stream keys under `prefix`. */
export function eventKeys(prefix: string): EventKeys {
  return { queue: (queue) => `${prefix}:events:{${queue}}`, all: `${prefix}:events:all` }
}

type StreamReply = [string, [string, string[]][]][] | null

/**
 * Task events on Redis streams: each event is an entry of its queue's capped stream (history for
 * `recentEvents`, `MAXLEN ~ retention`), and each batch one entry of an all-queues stream
 * (`MAXLEN ~ 10 × retention` batches) that live subscribers read.
 *
 * - Writing: one script call per batch (the sink sends one batch per event-loop turn, one at a
 *   time), on the main connection, beside that turn's state writes; the worker never awaits it.
 *   An earlier version sent a pipeline of XADD + PEXPIRE per event and stream: it halved the
 *   Redis bench (enqueue-one 3797 → 1724 jobs/s) on a 2-core machine that Redis shares; one
 *   command per batch is what remains (see the guide for the measured cost). On a cluster the
 *   streams live on different slots: one pipeline per queue, in parallel.
 * - Reading live: one duplicate connection per backend runs `XREAD BLOCK` on the all-queues
 *   stream for every subscription of this instance, filtering in process. A subscription starts
 *   at the stream's top as read when it subscribed (`XREVRANGE … COUNT 1`), so it misses nothing
 *   written after `subscribeEvents` resolved, even while the loop is behind.
 * - `MAXLEN ~` trims whole macro nodes (about 100 entries), so a stream keeps between the
 *   retention and the retention plus one node.
 */
export class RedisEvents implements EventStore {
  readonly #conns: Connections
  readonly #keys: EventKeys
  readonly #retention: number
  readonly #subscribers = new Set<Subscriber>()
  #reader: RedisClient | undefined
  #loop: Promise<void> | undefined
  #cursor = '0-0'
  /** Failed reads in a row (the reconnect wait's attempt number). */
  #failures = 0

  constructor(conns: Connections, keys: EventKeys, retention: number) {
    this.#conns = conns
    this.#keys = keys
    this.#retention = retention
  }

  /** Append a batch to the queues' streams and the all-queues stream, in order (one script call). */
  async publishEvents(events: readonly TaskEvent[]): Promise<void> {
    if (events.length === 0) return
    if (this.#conns.cluster) return this.#publishOnCluster(events)
    // `unpack` in the script takes at most a few thousand values: long batches go in slices.
    for (let i = 0; i < events.length; i += SCRIPT_BATCH) {
      const slice = events.length <= SCRIPT_BATCH ? events : events.slice(i, i + SCRIPT_BATCH)
      const keys: string[] = []
      const index = new Map<string, number>()
      const args: (string | number)[] = [this.#retention, this.#retention * ALL_STREAM_FACTOR, STREAM_TTL_MS]
      for (const event of slice) {
        let k = index.get(event.queue)
        if (k === undefined) {
          keys.push(this.#keys.queue(event.queue))
          k = keys.length
          index.set(event.queue, k)
        }
        args.push(k, JSON.stringify(event))
      }
      keys.push(this.#keys.all)
      await APPEND.run(this.#conns.main, keys, args)
    }
  }

  /** On a cluster the streams live on different slots: one pipeline per queue, and the all-queues entry. */
  async #publishOnCluster(events: readonly TaskEvent[]): Promise<void> {
    const main = this.#conns.main
    const byQueue = new Map<string, string[]>()
    const all: string[] = []
    for (const event of events) {
      const json = JSON.stringify(event)
      all.push('e', json)
      let list = byQueue.get(event.queue)
      if (list === undefined) {
        list = []
        byQueue.set(event.queue, list)
      }
      list.push(json)
    }
    const pipes = [...byQueue].map(([queue, list]) => {
      const p = main.pipeline()
      const key = this.#keys.queue(queue)
      for (const json of list) p.xadd(key, 'MAXLEN', '~', this.#retention, '*', 'e', json)
      p.pexpire(key, STREAM_TTL_MS)
      return p.exec()
    })
    const p = main.pipeline()
    p.xadd(this.#keys.all, 'MAXLEN', '~', this.#retention * ALL_STREAM_FACTOR, '*', ...all)
    p.pexpire(this.#keys.all, STREAM_TTL_MS)
    pipes.push(p.exec())
    for (const result of await Promise.all(pipes)) check(result)
  }

  /** Live from the stream's current top; one shared reader connection per backend. */
  async subscribeEvents(
    filter: EventFilter,
    onEvent: (event: TaskEvent) => void,
  ): Promise<BackendEventSubscription> {
    const top = (await this.#conns.main.xrevrange(this.#keys.all, '+', '-', 'COUNT', 1)) as [
      string,
      string[],
    ][]
    const from = top[0] === undefined ? '0-0' : top[0][0]
    const subscriber: Subscriber = { filter: { ...filter }, onEvent, from: parseId(from) }
    if (this.#subscribers.size === 0 && this.#loop === undefined) this.#cursor = from
    this.#subscribers.add(subscriber)
    this.#loop ??= this.#run()
    return {
      close: async () => {
        this.#subscribers.delete(subscriber)
        if (this.#subscribers.size === 0) await this.#stop()
      },
    }
  }

  /** The last `limit` events of `queue`, oldest first. */
  async recentEvents(queue: string, limit: number): Promise<TaskEvent[]> {
    if (limit <= 0) return []
    const entries = (await this.#conns.main.xrevrange(this.#keys.queue(queue), '+', '-', 'COUNT', limit)) as [
      string,
      string[],
    ][]
    const out: TaskEvent[] = []
    for (let i = entries.length - 1; i >= 0; i--) out.push(...decode((entries[i] as [string, string[]])[1]))
    return out.slice(Math.max(0, out.length - limit))
  }

  /** Stop reading (the backend closes). */
  async close(): Promise<void> {
    this.#subscribers.clear()
    await this.#stop()
  }

  async #stop(): Promise<void> {
    const reader = this.#reader
    this.#reader = undefined
    if (reader) this.#conns.drop(reader)
    const loop = this.#loop
    if (loop) await loop
  }

  async #run(): Promise<void> {
    let reader: RedisClient | undefined
    let failed = false
    try {
      reader = this.#conns.duplicate()
      this.#reader = reader
      await reader.connect()
      this.#failures = 0
      while (this.#subscribers.size > 0 && this.#reader === reader) {
        const reply = (await reader.xread(
          'COUNT',
          READ_COUNT,
          'BLOCK',
          BLOCK_MS,
          'STREAMS',
          this.#keys.all,
          this.#cursor,
        )) as StreamReply
        for (const [, entries] of reply ?? []) for (const [id, fields] of entries) this.#deliver(id, fields)
      }
    } catch (err) {
      if (this.#reader === reader && !this.#conns.closed) {
        failed = true
        this.#conns.logger.warn(`[redis] reading task events failed, reconnecting: ${String(err)}`)
      }
    } finally {
      if (reader !== undefined && this.#reader === reader) {
        this.#reader = undefined
        this.#conns.drop(reader)
      }
      this.#loop = undefined
      // Subscriptions still open (the read failed, or one arrived while this loop was ending):
      // read on with a new connection, after a pause when it failed.
      if (this.#subscribers.size > 0 && !this.#conns.closed) {
        // Core's reconnect wait, growing while the reads keep failing.
        const wait = failed ? reconnectDelay(++this.#failures) : 0
        this.#loop = (wait > 0 ? new Promise((r) => setTimeout(r, wait)) : Promise.resolve()).then(() =>
          this.#subscribers.size > 0 && !this.#conns.closed ? this.#run() : undefined,
        )
      }
    }
  }

  #deliver(id: string, fields: readonly string[]): void {
    this.#cursor = id
    const sid = parseId(id)
    for (const event of decode(fields)) {
      for (const s of this.#subscribers) {
        if (!after(sid, s.from) || !matchesFilter(event, s.filter)) continue
        try {
          s.onEvent(event)
        } catch {
          // A subscriber's bug is its own; the others still get the event.
        }
      }
    }
  }
}

/** The events of one stream entry (one per `e` field, in order). */
function decode(fields: readonly string[]): TaskEvent[] {
  const out: TaskEvent[] = []
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] !== 'e') continue
    const event = parseTaskEvent(fields[i + 1] as string)
    if (event !== undefined) out.push(event)
  }
  return out
}

function check(results: [Error | null, unknown][] | null): void {
  for (const [err] of results ?? []) if (err) throw err
}
