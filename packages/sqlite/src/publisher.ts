import { Batcher, type BatchOutcome, batchOk, type CheckedMessage } from '@errand/core'
import type { SqliteConnection, SyncLevel } from './connection.js'
import { queueTopic } from './consumer.js'
import type { JobStore } from './store.js'

/** Past this many messages, further calls wait for the next transaction. */
const MAX_MESSAGES_PER_COMMIT = 10_000

interface PublishCall {
  readonly queue: string
  readonly messages: readonly CheckedMessage[]
}

/**
 * Group commit for publishes, on core's {@link Batcher}: the `publish` calls of one event-loop
 * turn (e.g. the requests a web server handles concurrently) share one transaction and so one
 * fsync, which is what a durable publish costs (a few ms on a virtual disk). Each call is still
 * all-or-nothing and resolves only once its transaction committed; a single call is never split
 * (a batch always takes its first call, whatever its size). One transaction at a time: calls
 * made meanwhile go together in the next.
 */
export class Publisher {
  readonly #connection: SqliteConnection
  readonly #jobs: JobStore
  readonly #busyTimeoutMs: number
  readonly #sync: SyncLevel
  readonly #batcher = new Batcher<PublishCall, void>({
    flush: (calls) => this.#write(calls),
    maxItems: Number.MAX_SAFE_INTEGER,
    // "Bytes" are messages here: the size given to `add` is the call's message count.
    maxBytes: MAX_MESSAGES_PER_COMMIT,
    maxInFlight: 1,
  })

  constructor(connection: SqliteConnection, jobs: JobStore, busyTimeoutMs: number, sync: SyncLevel) {
    this.#connection = connection
    this.#jobs = jobs
    this.#busyTimeoutMs = busyTimeoutMs
    this.#sync = sync
  }

  /** Stores `messages` on `queue` in the next transaction; resolves once it committed. */
  publish(queue: string, messages: readonly CheckedMessage[]): Promise<void> {
    return this.#batcher.add({ queue, messages }, messages.length)
  }

  /** Resolves once nothing is pending or being written. */
  drained(): Promise<void> {
    return this.#batcher.drained()
  }

  async #write(calls: readonly PublishCall[]): Promise<BatchOutcome<void>[]> {
    await this.#connection.write(
      () => {
        const now = Date.now()
        for (const call of calls) {
          for (const m of call.messages) {
            const body = Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength)
            this.#jobs.insert(call.queue, m.priority, now + m.delayMs, body)
          }
        }
      },
      this.#busyTimeoutMs,
      this.#sync,
    )
    // Wake this process's consumers after the commit (the callers resolve right after).
    for (const queue of new Set(calls.map((c) => c.queue))) this.#connection.feed.emit(queueTopic(queue))
    return batchOk(calls.map(() => undefined))
  }
}
