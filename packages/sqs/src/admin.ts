import {
  GetQueueAttributesCommand,
  type Message,
  PurgeQueueCommand,
  type QueueAttributeName,
  type SQSClient,
} from '@aws-sdk/client-sqs'
import { type DeadLetter, isDeadLetterReason, type QueueStats, type SerializedError } from '@errand/core'
import { ATTR, decodeBody, readNumber, readString } from './codec.js'
import { retryTransient } from './errors.js'
import type { Moves } from './moves.js'
import type { QueueNames } from './names.js'
import type { QueueRegistry } from './queues.js'
import type { Store } from './store.js'

type Received = Message & { ReceiptHandle: string; MessageId: string }

/** Visibility of messages held during an admin scan, in seconds. */
const SCAN_VISIBILITY_SECONDS = 60

/**
 * Stats, purge and the dead-letter admin of a queue (its priority levels, delay queue and
 * dead-letter queue), on SQS's approximate counts and receive-and-delete scans.
 */
export class Admin {
  readonly #client: SQSClient
  readonly #store: Store
  readonly #registry: QueueRegistry
  readonly #moves: Moves
  readonly #waitSeconds: number
  readonly #retryTimeoutMs: number

  constructor(
    client: SQSClient,
    store: Store,
    registry: QueueRegistry,
    moves: Moves,
    options: { waitSeconds: number; retryTimeoutMs: number },
  ) {
    this.#client = client
    this.#store = store
    this.#registry = registry
    this.#moves = moves
    this.#waitSeconds = options.waitSeconds
    this.#retryTimeoutMs = options.retryTimeoutMs
  }

  /** Counts of a queue: its levels, its delay queue (all delayed) and its dead letters. */
  async stats(names: QueueNames): Promise<QueueStats> {
    const levels = await Promise.all((await this.#registry.levels(names)).map((url) => this.#counts(url)))
    const dead = await this.#counts(await this.#registry.dead(names))
    let ready = 0
    let delayed = 0
    let inFlight = 0
    for (const c of levels) {
      ready += c.visible
      delayed += c.delayed
      inFlight += c.inFlight
    }
    const d = await this.#counts(await this.#registry.delay(names))
    delayed += d.visible + d.delayed + d.inFlight
    return { ready, delayed, inFlight, dead: dead.visible + dead.delayed + dead.inFlight }
  }

  /** Remove the ready and delayed messages of every level and the delay queue. */
  async purge(names: QueueNames): Promise<number> {
    const urls = await this.#registry.levels(names)
    const counts = await Promise.all([
      ...urls.map((url) => this.#purgeReady(url)),
      this.#purgeAll(await this.#registry.delay(names)),
    ])
    return counts.reduce((a, b) => a + b, 0)
  }

  /** Up to `limit` dead letters, held for the scan and given back after it. */
  async deadLetters(names: QueueNames, limit: number): Promise<DeadLetter[]> {
    const out: DeadLetter[] = []
    await this.#scan(
      await this.#registry.dead(names),
      async (batch) => {
        for (const m of batch) out.push(toDeadLetter(names.logical, m))
        return batch
      },
      limit,
    )
    return out.slice(0, limit)
  }

  /** Put dead letters (all, or `ids`) back on their queue. */
  requeueDead(names: QueueNames, ids: readonly string[] | undefined): Promise<number> {
    return this.#takeDead(names, ids, (m) => this.#moves.requeue(names, m))
  }

  /** Delete dead letters (all, or `ids`). */
  purgeDead(names: QueueNames, ids: readonly string[] | undefined): Promise<number> {
    return this.#takeDead(names, ids)
  }

  /** Delete the dead letters of `names` (all, or `ids`), after `first` (a requeue) for each. */
  async #takeDead(
    names: QueueNames,
    ids: readonly string[] | undefined,
    first?: (message: Received) => Promise<void>,
  ): Promise<number> {
    const url = await this.#registry.dead(names)
    const wanted = ids === undefined ? undefined : new Set(ids)
    if (wanted?.size === 0) return 0
    let count = 0
    await this.#scan(url, async (batch) => {
      const keep = batch.filter((m) => wanted !== undefined && !wanted.has(m.MessageId))
      await Promise.all(
        batch
          .filter((m) => !keep.includes(m))
          .map(async (m) => {
            await first?.(m)
            await this.#store.delete(url, m.ReceiptHandle, this.#deadline())
            count++
          }),
      )
      return keep
    })
    return count
  }

  /** Approximate counts of one queue: visible, delayed, in flight. */
  async #counts(url: string): Promise<{ visible: number; delayed: number; inFlight: number }> {
    const names: QueueAttributeName[] = [
      'ApproximateNumberOfMessages',
      'ApproximateNumberOfMessagesDelayed',
      'ApproximateNumberOfMessagesNotVisible',
    ]
    const out = await retryTransient('GetQueueAttributes', Date.now() + this.#retryTimeoutMs, () => {
      this.#store.count('GetQueueAttributes')
      return this.#client.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: names }))
    })
    const n = (name: QueueAttributeName): number => Number(out.Attributes?.[name] ?? 0) || 0
    return {
      visible: n('ApproximateNumberOfMessages'),
      delayed: n('ApproximateNumberOfMessagesDelayed'),
      inFlight: n('ApproximateNumberOfMessagesNotVisible'),
    }
  }

  /**
   * Remove ready and delayed messages, leaving those in flight. Ready messages are received and
   * deleted (an exact count). Delayed ones cannot be received: when there are some and nothing is
   * in flight, PurgeQueue removes them (on AWS at most once per 60 s per queue, and the count is
   * then approximate); with messages in flight, delayed ones are left in place.
   */
  async #purgeReady(url: string): Promise<number> {
    const before = await this.#counts(url)
    if (before.delayed > 0 && before.inFlight === 0) {
      try {
        await retryTransient('PurgeQueue', Date.now() + this.#retryTimeoutMs, () => {
          this.#store.count('PurgeQueue')
          return this.#client.send(new PurgeQueueCommand({ QueueUrl: url }))
        })
        return before.visible + before.delayed
      } catch {
        // PurgeQueueInProgress (60 s limit) or refused: fall back to receive-and-delete.
      }
    }
    let count = 0
    await this.#scan(url, async (batch) => {
      await Promise.all(batch.map((m) => this.#store.delete(url, m.ReceiptHandle, this.#deadline())))
      count += batch.length
      return []
    })
    return count
  }

  /**
   * Remove every message of a queue that holds only not-yet-due messages (a delay queue):
   * PurgeQueue, counted from the approximate counts before it (exact on an emulator; on AWS
   * approximate, at most once per 60 s per queue, and it may also take messages sent during the
   * following minute). Falls back to receive-and-delete when PurgeQueue is refused.
   */
  async #purgeAll(url: string): Promise<number> {
    const before = await this.#counts(url)
    const total = before.visible + before.delayed + before.inFlight
    if (total === 0) return 0
    try {
      await retryTransient('PurgeQueue', Date.now() + this.#retryTimeoutMs, () => {
        this.#store.count('PurgeQueue')
        return this.#client.send(new PurgeQueueCommand({ QueueUrl: url }))
      })
      return total
    } catch {
      return this.#purgeReady(url)
    }
  }

  /**
   * Receive every visible message of the queue once, holding each for the scan; `visit` handles
   * each batch and returns the messages to give back (visibility 0) at the end. `limit` stops
   * early once that many were seen.
   */
  async #scan(
    url: string,
    visit: (batch: Received[]) => Promise<Received[]>,
    limit = Infinity,
  ): Promise<void> {
    const seen = new Set<string>()
    const keep: Received[] = []
    try {
      while (seen.size < limit) {
        const messages = await retryTransient('ReceiveMessage', this.#deadline(), () =>
          this.#store.receive(url, 10, this.#waitSeconds, SCAN_VISIBILITY_SECONDS, false),
        )
        const fresh = messages.filter(
          (m): m is Received =>
            m.ReceiptHandle !== undefined && m.MessageId !== undefined && !seen.has(m.MessageId),
        )
        if (fresh.length === 0) break
        for (const m of fresh) seen.add(m.MessageId)
        keep.push(...(await visit(fresh)))
      }
    } finally {
      await Promise.allSettled(
        keep.map((m) => this.#store.changeVisibility(url, m.ReceiptHandle, 0, this.#deadline())),
      )
    }
  }

  #deadline(): number {
    return Date.now() + this.#retryTimeoutMs
  }
}

/** A dead-letter queue message as listed. */
function toDeadLetter(queue: string, message: Received): DeadLetter {
  const attrs = message.MessageAttributes
  const reasonAttr = readString(attrs, ATTR.reason)
  const reason = isDeadLetterReason(reasonAttr) ? reasonAttr : 'exhausted'
  let error: SerializedError | undefined
  const rawError = readString(attrs, ATTR.error)
  if (rawError !== undefined) {
    try {
      const parsed = JSON.parse(rawError) as Partial<SerializedError>
      if (typeof parsed.name === 'string' && typeof parsed.message === 'string') {
        error = { name: parsed.name, message: parsed.message }
        if (typeof parsed.code === 'string') error.code = parsed.code
        if (typeof parsed.stack === 'string') error.stack = parsed.stack
      }
    } catch {
      error = { name: 'Error', message: rawError }
    }
  }
  const deadAt = readNumber(attrs, ATTR.deadAt) ?? Number(message.Attributes?.SentTimestamp ?? Date.now())
  return { id: message.MessageId, queue, reason, error, body: decodeBody(message), deadAt }
}
