import { type App, isErrandError, type TaskEvent } from '@errand/core'

/** The event types the activity list shows (a task's outcome, or one failed attempt). */
export const OUTCOME_TYPES = ['succeeded', 'failed', 'dead-lettered', 'canceled'] as const
export type OutcomeType = (typeof OUTCOME_TYPES)[number]
const OUTCOMES = new Set<string>(OUTCOME_TYPES)

/**
 * One outcome event as the dashboard keeps and shows it: only the fields it displays, copied out
 * of the event (event fields are user data: task names and error messages are escaped when shown).
 */
export interface ActivityItem {
  readonly type: OutcomeType
  readonly id: string
  readonly task: string
  readonly queue: string
  readonly attempt: number
  readonly at: number
  readonly durationMs?: number
  readonly willRetry?: boolean
  readonly reason?: string
  readonly error?: { readonly name: string; readonly message: string; readonly code?: string }
}

/** One minute of the throughput chart; null where the dashboard does not know (before its window). */
export interface ThroughputPoint {
  /** Start of the minute (ms since epoch). */
  readonly at: number
  readonly succeeded: number | null
  readonly failed: number | null
  readonly deadLettered: number | null
}

/** Where a task sits in its workflow, from its events (task records do not store it). */
export interface Lineage {
  readonly queue: string
  readonly task: string
  readonly root?: string
  readonly parent?: string
}

/** What the page says about the event feed. */
export type ActivityStatus =
  | { readonly state: 'starting' }
  | {
      readonly state: 'live'
      readonly since: number
      /**
       * True when the app has no result backend: `app.events()` then sees only the tasks this
       * process sends and runs (an in-process store), not other processes'.
       */
      readonly processOnly: boolean
    }
  | { readonly state: 'unsupported'; readonly reason: string }
  | { readonly state: 'failed'; readonly reason: string }

/** Options of {@link Activity}. */
export interface ActivityOptions {
  /** How much throughput history is kept. Default one hour. */
  readonly historyMs?: number
  /** Outcome events kept per queue for its activity list. Default 50. */
  readonly recentLimit?: number
  /** Events read back per queue at start (`app.recentEvents`). Default 1000. */
  readonly backfillLimit?: number
  /** Most queues backfilled at start, and most queues with their own counts and list. Default 100. */
  readonly maxQueues?: number
  /** Most tasks whose lineage is remembered. Default 10 000. */
  readonly maxLineage?: number
  /** Clock, for tests. */
  readonly now?: () => number
}

const MINUTE = 60_000
/** Most live events remembered while the read-back runs, to count each event once. */
/** Events remembered to drop a second copy (live and read back, or a store's at-least-once write). */
const MAX_SEEN_KEYS = 20_000

interface Counts {
  succeeded: number
  failed: number
  deadLettered: number
}

interface Bucket {
  minute: number
  total: Counts
  queues: Map<string, Counts>
}

const zero = (): Counts => ({ succeeded: 0, failed: 0, deadLettered: 0 })
const str = (v: unknown): string => (typeof v === 'string' ? v : String(v ?? ''))
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined)

/** The displayed fields of an outcome event (anything else the event holds is not kept). */
export function activityItem(e: TaskEvent): ActivityItem | undefined {
  if (!OUTCOMES.has(e.type)) return undefined
  const item: { -readonly [K in keyof ActivityItem]: ActivityItem[K] } = {
    type: e.type as OutcomeType,
    id: str(e.id),
    task: str(e.task),
    queue: str(e.queue),
    attempt: num(e.attempt) ?? 0,
    at: num(e.at) ?? 0,
  }
  const any = e as unknown as Partial<Record<string, unknown>>
  const duration = num(any.durationMs)
  if (duration !== undefined) item.durationMs = duration
  if (typeof any.willRetry === 'boolean') item.willRetry = any.willRetry
  if (any.reason !== undefined) item.reason = str(any.reason)
  const error = any.error as Partial<Record<string, unknown>> | undefined
  if (error && typeof error === 'object') {
    item.error =
      error.code === undefined
        ? { name: str(error.name), message: str(error.message) }
        : { name: str(error.name), message: str(error.message), code: str(error.code) }
  }
  return item
}

/**
 * The dashboard's view of task lifecycle events: it subscribes with `app.events()` when the
 * dashboard starts, reads back each known queue's recent events (`app.recentEvents`, bounded), and
 * keeps, all bounded:
 * - succeeded / failed / dead-lettered counts per minute for the last hour, in a ring of minute
 *   buckets (per queue and all queues summed);
 * - the last `recentLimit` outcome events of each queue (the activity list);
 * - the workflow lineage (queue, root, parent) of the last `maxLineage` tasks seen.
 *
 * The window is honest about what it covers: events since the subscription went live, plus what
 * the store still held at start. Minutes before that are unknown (null), not zero.
 */
export class Activity {
  readonly historyMs: number
  readonly recentLimit: number
  readonly backfillLimit: number
  private readonly maxQueues: number
  private readonly maxLineage: number
  private readonly now: () => number
  private readonly buckets: (Bucket | undefined)[]
  private readonly recent = new Map<string, ActivityItem[]>()
  private readonly lineages = new Map<string, Lineage>()
  /** Per queue: counts are complete from this time on. */
  private readonly coverage = new Map<string, number>()
  /** All queues summed are complete from this time on. */
  private allCoverage = Number.POSITIVE_INFINITY
  private liveSince = Number.POSITIVE_INFINITY
  /** Keys of the last events added, oldest first: each event is counted and listed once. */
  private readonly seen = new Set<string>()
  private readonly listeners = new Set<(item: ActivityItem) => void>()
  private stream: { close(): Promise<void> } | undefined
  private stopped = false
  private started: Promise<void> | undefined
  status: ActivityStatus = { state: 'starting' }
  /** Events read back at start (all queues). */
  backfilled = 0

  constructor(
    private readonly app: App,
    options: ActivityOptions = {},
  ) {
    this.historyMs = options.historyMs ?? 3_600_000
    this.recentLimit = options.recentLimit ?? 50
    this.backfillLimit = options.backfillLimit ?? 1000
    this.maxQueues = options.maxQueues ?? 100
    this.maxLineage = options.maxLineage ?? 10_000
    this.now = options.now ?? Date.now
    this.buckets = new Array(Math.ceil(this.historyMs / MINUTE) + 1)
  }

  /** Subscribe, then backfill. Resolves once both are done (or refused); never rejects. */
  start(): Promise<void> {
    this.started ??= this.run()
    return this.started
  }

  /** Close the subscription (what was collected is kept). */
  stop(): void {
    this.stopped = true
    void this.stream?.close().catch(() => {})
    this.stream = undefined
  }

  private async run(): Promise<void> {
    let stream: Awaited<ReturnType<App['events']>>
    try {
      // `on()` listeners are called synchronously and never dropped; the iterator (unused) is
      // held to one item so it costs nothing.
      stream = await this.app.events({ bufferSize: 1 })
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err)
      this.status =
        isErrandError(err) && err.code === 'ERR_NOT_SUPPORTED'
          ? { state: 'unsupported', reason }
          : { state: 'failed', reason }
      return
    }
    if (this.stopped) {
      await stream.close()
      return
    }
    this.stream = stream
    this.liveSince = this.now()
    this.allCoverage = this.liveSince
    let processOnly = false
    try {
      processOnly = (await this.app.connect()).backend === undefined
    } catch {
      // Connected already (events() succeeded); a failure here leaves the wording as it was.
    }
    this.status = { state: 'live', since: this.liveSince, processOnly }
    stream.on((event) => {
      this.add(event)
    })
    try {
      await this.backfill()
    } catch {
      // History is a bonus: without it, the window starts when the subscription went live.
    }
  }

  private async backfill(): Promise<void> {
    const all = await this.app.queues()
    const names = all.slice(0, this.maxQueues)
    const starts: number[] = []
    for (let i = 0; i < names.length; i += 8) {
      await Promise.all(
        names.slice(i, i + 8).map(async (queue) => {
          let events: TaskEvent[]
          try {
            events = await this.app.recentEvents(queue, { limit: this.backfillLimit })
          } catch {
            starts.push(this.liveSince)
            return
          }
          // A full answer may have been cut by the limit or the store's retention: the minute of
          // its oldest event is partial, so the window starts at the next minute. A shorter one
          // is everything the store holds for the queue.
          const from =
            events.length >= this.backfillLimit && events[0]
              ? (Math.floor(events[0].at / MINUTE) + 1) * MINUTE
              : Number.NEGATIVE_INFINITY
          starts.push(Math.min(from, this.liveSince))
          this.coverage.set(queue, Math.min(from, this.liveSince))
          for (const e of events) if (this.add(e, from)) this.backfilled++
          const list = this.recent.get(queue)
          if (list) list.sort((a, b) => a.at - b.at)
        }),
      )
    }
    // All queues summed are complete only as far back as every queue is, and only when every
    // queue was read back.
    this.allCoverage = all.length > names.length || starts.length === 0 ? this.liveSince : Math.max(...starts)
  }

  /**
   * Count, list and pass on one event, once: an event seen already (live and read back, or
   * written twice by a store's at-least-once flush) is dropped. Returns whether it was new.
   */
  private add(e: TaskEvent, countFrom = Number.NEGATIVE_INFINITY): boolean {
    if (typeof e !== 'object' || e === null || typeof e.id !== 'string' || typeof e.queue !== 'string')
      return false
    const key = eventKey(e)
    if (this.seen.has(key)) return false
    this.seen.add(key)
    if (this.seen.size > MAX_SEEN_KEYS) {
      const oldest = this.seen.values().next().value
      if (oldest !== undefined) this.seen.delete(oldest)
    }
    this.remember(e)
    const item = activityItem(e)
    if (!item) return true
    const now = this.now()
    const at = Math.min(item.at, now)
    if (at >= countFrom && at >= now - this.historyMs) this.count(item.type, item.queue, at)
    this.keepRecent(item)
    // Read-back items go to listeners too: a page opened before the read-back finished would
    // otherwise never show them (the browser keeps one row per event, so nothing is doubled).
    for (const listener of this.listeners) listener(item)
    return true
  }

  private remember(e: TaskEvent): void {
    if (this.lineages.has(e.id)) this.lineages.delete(e.id)
    const lineage: { -readonly [K in keyof Lineage]: Lineage[K] } = { queue: e.queue, task: str(e.task) }
    if (typeof e.root === 'string') lineage.root = e.root
    if (typeof e.parent === 'string') lineage.parent = e.parent
    this.lineages.set(e.id, lineage)
    if (this.lineages.size > this.maxLineage) {
      const oldest = this.lineages.keys().next().value
      if (oldest !== undefined) this.lineages.delete(oldest)
    }
  }

  private count(type: OutcomeType, queue: string, at: number): void {
    const field =
      type === 'succeeded'
        ? 'succeeded'
        : type === 'failed'
          ? 'failed'
          : type === 'dead-lettered'
            ? 'deadLettered'
            : undefined
    if (!field) return
    const minute = Math.floor(at / MINUTE)
    const slot = minute % this.buckets.length
    let bucket = this.buckets[slot]
    if (!bucket || bucket.minute < minute) {
      bucket = { minute, total: zero(), queues: new Map() }
      this.buckets[slot] = bucket
    } else if (bucket.minute > minute) return // older than the ring holds
    bucket.total[field]++
    let counts = bucket.queues.get(queue)
    if (!counts && bucket.queues.size < this.maxQueues * 2) {
      counts = zero()
      bucket.queues.set(queue, counts)
    }
    if (counts) counts[field]++
  }

  private keepRecent(item: ActivityItem): void {
    let list = this.recent.get(item.queue)
    if (!list) {
      if (this.recent.size >= this.maxQueues * 2) {
        const oldest = this.recent.keys().next().value
        if (oldest !== undefined) this.recent.delete(oldest)
      }
      list = []
      this.recent.set(item.queue, list)
    }
    list.push(item)
    if (list.length > this.recentLimit) list.splice(0, list.length - this.recentLimit)
  }

  /** The start of the window for `queue` (all queues when undefined): counts are complete after it. */
  windowStart(queue: string | undefined): number {
    if (queue === undefined) return this.allCoverage
    return this.coverage.get(queue) ?? this.liveSince
  }

  /** One point per minute of the last hour, oldest first; null before the window. */
  throughput(queue: string | undefined): ThroughputPoint[] {
    const now = this.now()
    const last = Math.floor(now / MINUTE)
    const first = Math.floor((now - this.historyMs) / MINUTE) + 1
    const from = this.windowStart(queue)
    const out: ThroughputPoint[] = []
    for (let m = first; m <= last; m++) out.push(this.point(m, queue, from))
    return out
  }

  /** The minute `at` falls in, for one queue or all. */
  pointAt(at: number, queue: string | undefined): ThroughputPoint {
    return this.point(Math.floor(at / MINUTE), queue, this.windowStart(queue))
  }

  private point(minute: number, queue: string | undefined, from: number): ThroughputPoint {
    const at = minute * MINUTE
    if (at + MINUTE <= from) return { at, succeeded: null, failed: null, deadLettered: null }
    const bucket = this.buckets[minute % this.buckets.length]
    const c =
      bucket?.minute === minute ? (queue === undefined ? bucket.total : bucket.queues.get(queue)) : undefined
    return { at, succeeded: c?.succeeded ?? 0, failed: c?.failed ?? 0, deadLettered: c?.deadLettered ?? 0 }
  }

  /** The last outcome events of `queue`, newest first. */
  recentOf(queue: string): ActivityItem[] {
    return [...(this.recent.get(queue) ?? [])].reverse()
  }

  /** What the dashboard saw of task `id`'s place in its workflow. */
  lineage(id: string): Lineage | undefined {
    return this.lineages.get(id)
  }

  /** Call `listener` with every outcome event, live or read back; returns the unsubscribe function. */
  subscribe(listener: (item: ActivityItem) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
}

/** Events have no id of their own; these fields tell two apart (for backfill against live). */
function eventKey(e: TaskEvent): string {
  return `${e.type}\u0000${e.id}\u0000${e.attempt}\u0000${e.at}`
}
