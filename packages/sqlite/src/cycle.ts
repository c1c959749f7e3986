import { ConnectionError, reconnectDelay } from '@errand/core'
import { lockWait, type SqliteConnection, type SyncLevel } from './connection.js'
import { queueTopic, type SqliteConsumer } from './consumer.js'
import type { SettleOp, SqliteDelivery } from './delivery.js'
import { ADAPTER, type SqliteLogger } from './options.js'
import type { FetchedRow, JobStore } from './store.js'

/** Most settles applied in one transaction: bounds how long one cycle holds the event loop. */
const MAX_SETTLES = 2000
/** Most rows one consumer takes in one cycle. */
const MAX_TAKE = 500

interface PendingSettle {
  /** Whose prefetch the settle frees (undefined: the delivery no longer counts, e.g. at close). */
  readonly consumer: SqliteConsumer | undefined
  readonly delivery: SqliteDelivery
  readonly op: SettleOp
  readonly since: number
  /** `matched`: false when the row was no longer ours (the lease ran out). */
  readonly resolve: (matched: boolean) => void
  readonly reject: (err: unknown) => void
}

/** Frees a prefetch slot: everything but `extend`. */
function frees(op: SettleOp): boolean {
  return op.kind !== 'extend'
}

/**
 * The broker's work loop. Settles (ack, nack, dead-letter, extend, release) queue up here; one
 * cycle, on a later turn of the event loop, applies them all and then leases rows for every
 * consumer with room, in one short `BEGIN IMMEDIATE` transaction: one commit per batch of jobs
 * in steady state. A consumer's acks and its next rows share that commit.
 *
 * When nothing is to be settled, the cycle first checks with a read (no lock) whether the
 * consumers' queues have anything due, so idle consumers never take the write lock. When another
 * process holds the lock, the cycle retries on a timer instead of blocking; settles that wait
 * longer than `busyTimeoutMs` fail with `ERR_CONNECTION` (their lease brings the rows back).
 */
export class Cycle {
  readonly #connection: SqliteConnection
  readonly #jobs: JobStore
  readonly #logger: SqliteLogger
  readonly #busyTimeoutMs: number
  readonly #sync: SyncLevel
  readonly consumers = new Set<SqliteConsumer>()
  #pending: PendingSettle[] = []
  #scheduled = false
  #retry: NodeJS.Timeout | undefined
  #round = 0
  #failures = 0
  #idle: (() => void)[] = []

  constructor(
    connection: SqliteConnection,
    jobs: JobStore,
    logger: SqliteLogger,
    busyTimeoutMs: number,
    sync: SyncLevel,
  ) {
    this.#connection = connection
    this.#jobs = jobs
    this.#logger = logger
    this.#busyTimeoutMs = busyTimeoutMs
    this.#sync = sync
  }

  /**
   * Queues a settle; resolves once committed, with false when it matched no row (the lease was
   * lost). The delivery's prefetch slot is core's business (its settle releases it on either
   * outcome); `consumer` only lets this cycle fetch into the room the settle frees.
   */
  add(consumer: SqliteConsumer | undefined, delivery: SqliteDelivery, op: SettleOp): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.#pending.push({ consumer, delivery, op, since: Date.now(), resolve, reject })
      this.request()
    })
  }

  /** Runs a cycle on a later turn (once, however often asked in this turn). */
  request(): void {
    if (this.#scheduled || this.#retry !== undefined) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      this.#run()
    })
  }

  /** Resolves once no settle is pending. */
  drained(): Promise<void> {
    if (this.#pending.length === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }

  /** Stops retrying (the broker closed); pending settles are rejected with `error`. */
  stop(error: unknown): void {
    clearTimeout(this.#retry)
    this.#retry = undefined
    const pending = this.#pending
    this.#pending = []
    for (const p of pending) p.reject(error)
    this.#checkIdle()
  }

  #run(): void {
    if (this.#connection.closed) return
    const now = Date.now()
    const batch = this.#pending.slice(0, MAX_SETTLES)
    const freed = new Map<SqliteConsumer, number>()
    for (const p of batch) {
      if (!frees(p.op) || p.consumer === undefined) continue
      freed.set(p.consumer, (freed.get(p.consumer) ?? 0) + 1)
    }
    let fetchers: { consumer: SqliteConsumer; asked: number }[] = []
    try {
      for (const consumer of this.consumers) {
        if (consumer.canceled || !consumer.wanted) continue
        const room = Math.min(consumer.room(freed.get(consumer) ?? 0), MAX_TAKE)
        if (room <= 0) continue
        // Nothing to settle: look without the lock first, so idle consumers never write.
        if (batch.length === 0 && this.#jobs.dueLevels(consumer.settings.queue, now).length === 0) {
          consumer.idle(this.#jobs.nextDue(consumer.settings.queue, now))
          continue
        }
        fetchers.push({ consumer, asked: room })
      }
    } catch (err) {
      this.#fail([], this.#connection.wrap(err, 'look for due jobs'))
      return
    }
    if (batch.length === 0 && fetchers.length === 0) return
    let taken: FetchedRow[][]
    /** Per settle of the batch: whether it matched its row (false: the lease was lost). */
    let matched: boolean[] = []
    try {
      const attempt = this.#connection.tryWrite(
        () => {
          matched = batch.map((p) => this.#applyOne(p, now))
          return fetchers.map((f) =>
            this.#jobs.take(f.consumer.settings.queue, f.asked, now, f.consumer.settings.leaseMs),
          )
        },
        // Acks and leases only: a power loss forgets them (the jobs come back), never loses one.
        this.#sync,
      )
      if (attempt.busy) {
        this.#waitForLock(now)
        return
      }
      taken = attempt.value
    } catch (err) {
      this.#fail(batch, err)
      return
    }
    this.#round = 0
    this.#failures = 0
    this.#pending.splice(0, batch.length)
    const woken = new Set<string>()
    for (const [i, p] of batch.entries()) {
      // A nack with a delay re-arms other consumers' due timers too.
      if (p.op.kind === 'release' || p.op.kind === 'nack') woken.add(p.delivery.queue)
      p.resolve(matched[i]!)
    }
    fetchers = fetchers.filter((f, i) => {
      const rows = taken[i]!
      if (f.consumer.canceled) return false
      f.consumer.landed(rows, f.asked)
      if (rows.length < f.asked) f.consumer.idle(this.#jobs.nextDue(f.consumer.settings.queue, Date.now()))
      return true
    })
    for (const queue of woken) this.#connection.feed.emit(queueTopic(queue))
    if (this.#pending.length > 0) this.request()
    else {
      for (const c of this.consumers) if (c.wanted && !c.canceled && c.room() > 0) this.request()
      this.#checkIdle()
    }
  }

  /** Applies one settle; false when it matched no row (the lease was lost). */
  #applyOne(p: PendingSettle, now: number): boolean {
    const { id, attempt } = p.delivery
    const op = p.op
    switch (op.kind) {
      case 'ack':
        return this.#jobs.ack(id, attempt)
      case 'nack':
        return this.#jobs.giveBack(id, attempt, now + op.delayMs)
      case 'release':
        return this.#jobs.giveBack(id, attempt, now)
      case 'extend':
        return this.#jobs.extend(id, attempt, now + op.ms)
      case 'dead':
        return this.#jobs.bury(id, attempt, op.info, now)
    }
  }

  /** Another process holds the lock: retry soon, failing settles that waited too long. */
  #waitForLock(now: number): void {
    const expired = this.#pending.filter((p) => now - p.since >= this.#busyTimeoutMs)
    if (expired.length > 0) {
      this.#pending = this.#pending.filter((p) => now - p.since < this.#busyTimeoutMs)
      const error = new ConnectionError(
        `${this.#connection.path} stayed locked by another process for more than ${this.#busyTimeoutMs} ms (busyTimeoutMs)`,
        { adapter: ADAPTER },
      )
      for (const p of expired) p.reject(error)
    }
    this.#schedule(lockWait(this.#round++))
  }

  /** A cycle failed: its settles reject (they may be retried); consumers look again later. */
  #fail(batch: PendingSettle[], err: unknown): void {
    const taken = new Set(batch)
    this.#pending = this.#pending.filter((p) => !taken.has(p))
    for (const p of batch) p.reject(err)
    this.#failures++
    // Not a lock wait: the file failed (I/O error, full disk…). Wait like a reconnect.
    const delay = Math.round(reconnectDelay(this.#failures))
    this.#logger.warn(
      `a cycle on ${this.#connection.path} failed (${(err as Error).message}); retrying in ${delay} ms`,
    )
    this.#schedule(delay)
    this.#checkIdle()
  }

  #schedule(delayMs: number): void {
    clearTimeout(this.#retry)
    this.#retry = setTimeout(() => {
      this.#retry = undefined
      this.#run()
    }, delayMs)
  }

  #checkIdle(): void {
    if (this.#pending.length > 0) return
    const idle = this.#idle
    this.#idle = []
    for (const resolve of idle) resolve()
  }
}
