import type { CheckedMessage } from '@errand/core'
import type { SqliteConnection, SyncLevel } from './connection.js'
import { queueTopic } from './consumer.js'
import type { JobStore } from './store.js'

/** Past this many messages, further calls wait for the next transaction. */
const MAX_MESSAGES_PER_COMMIT = 10_000

interface PendingPublish {
  readonly queue: string
  readonly messages: readonly CheckedMessage[]
  readonly resolve: () => void
  readonly reject: (err: unknown) => void
}

/**
 * Group commit for publishes: the `publish` calls of one event-loop turn (e.g. the requests a
 * web server handles concurrently) share one transaction and so one fsync, which is what a
 * durable publish costs (a few ms on a virtual disk). Each call is still all-or-nothing and
 * resolves only once its transaction committed; a single call is never split.
 */
export class Publisher {
  readonly #connection: SqliteConnection
  readonly #jobs: JobStore
  readonly #busyTimeoutMs: number
  readonly #sync: SyncLevel
  #pending: PendingPublish[] = []
  #running: Promise<void> | undefined

  constructor(connection: SqliteConnection, jobs: JobStore, busyTimeoutMs: number, sync: SyncLevel) {
    this.#connection = connection
    this.#jobs = jobs
    this.#busyTimeoutMs = busyTimeoutMs
    this.#sync = sync
  }

  /** Stores `messages` on `queue` in the next transaction; resolves once it committed. */
  publish(queue: string, messages: readonly CheckedMessage[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ queue, messages, resolve, reject })
      this.#schedule()
    })
  }

  /** Resolves once nothing is pending or being written. */
  async drained(): Promise<void> {
    while (this.#running !== undefined) await this.#running
  }

  #schedule(): void {
    if (this.#running !== undefined) return
    // setImmediate, not a microtask: every publish of this turn joins the transaction.
    this.#running = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.#flush())
  }

  async #flush(): Promise<void> {
    let count = 0
    let take = 0
    while (take < this.#pending.length && (take === 0 || count < MAX_MESSAGES_PER_COMMIT)) {
      count += this.#pending[take]!.messages.length
      take++
    }
    const batch = this.#pending.slice(0, take)
    this.#pending = this.#pending.slice(take)
    try {
      await this.#connection.write(
        () => {
          const now = Date.now()
          for (const p of batch) {
            for (const m of p.messages) {
              const body = Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength)
              this.#jobs.insert(p.queue, m.priority, now + m.delayMs, body)
            }
          }
        },
        this.#busyTimeoutMs,
        this.#sync,
      )
      for (const p of batch) p.resolve()
      for (const queue of new Set(batch.map((p) => p.queue))) this.#connection.feed.emit(queueTopic(queue))
    } catch (err) {
      for (const p of batch) p.reject(err)
    }
    this.#running = undefined
    if (this.#pending.length > 0) this.#schedule()
  }
}
