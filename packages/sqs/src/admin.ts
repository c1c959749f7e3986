import {
  GetQueueAttributesCommand,
  type Message,
  PurgeQueueCommand,
  type QueueAttributeName,
  type SQSClient,
} from '@aws-sdk/client-sqs'
import type { DeadLetter, DeadLetterReason, SerializedError } from '@errand/core'
import { retryTransient } from './client.js'
import { ATTR, decodeBody, readNumber, readString } from './codec.js'
import type { Transport } from './transport.js'

type Received = Message & { ReceiptHandle: string; MessageId: string }

/** Visibility of messages held during an admin scan, in seconds. */
const SCAN_VISIBILITY_SECONDS = 60

const REASONS: readonly DeadLetterReason[] = [
  'exhausted',
  'rejected',
  'undecodable',
  'invalid-input',
  'unregistered',
  'canceled',
  'expired',
]

/** The SQS calls behind stats, purge and the dead-letter admin. */
export class Admin {
  readonly #client: SQSClient
  readonly #transport: Transport
  readonly #waitSeconds: number
  readonly #retryTimeoutMs: number

  constructor(
    client: SQSClient,
    transport: Transport,
    options: { waitSeconds: number; retryTimeoutMs: number },
  ) {
    this.#client = client
    this.#transport = transport
    this.#waitSeconds = options.waitSeconds
    this.#retryTimeoutMs = options.retryTimeoutMs
  }

  /** Approximate counts of one queue: visible, delayed, in flight. */
  async counts(url: string): Promise<{ visible: number; delayed: number; inFlight: number }> {
    const names: QueueAttributeName[] = [
      'ApproximateNumberOfMessages',
      'ApproximateNumberOfMessagesDelayed',
      'ApproximateNumberOfMessagesNotVisible',
    ]
    const out = await retryTransient('GetQueueAttributes', Date.now() + this.#retryTimeoutMs, () => {
      this.#transport.count('GetQueueAttributes')
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
  async purge(url: string): Promise<number> {
    const before = await this.counts(url)
    if (before.delayed > 0 && before.inFlight === 0) {
      try {
        await retryTransient('PurgeQueue', Date.now() + this.#retryTimeoutMs, () => {
          this.#transport.count('PurgeQueue')
          return this.#client.send(new PurgeQueueCommand({ QueueUrl: url }))
        })
        return before.visible + before.delayed
      } catch {
        // PurgeQueueInProgress (60 s limit) or refused: fall back to receive-and-delete.
      }
    }
    let count = 0
    await this.scan(url, async (batch) => {
      await Promise.all(batch.map((m) => this.#transport.delete(url, m.ReceiptHandle, this.#deadline())))
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
  async purgeAll(url: string): Promise<number> {
    const before = await this.counts(url)
    const total = before.visible + before.delayed + before.inFlight
    if (total === 0) return 0
    try {
      await retryTransient('PurgeQueue', Date.now() + this.#retryTimeoutMs, () => {
        this.#transport.count('PurgeQueue')
        return this.#client.send(new PurgeQueueCommand({ QueueUrl: url }))
      })
      return total
    } catch {
      return this.purge(url)
    }
  }

  /**
   * Receive every visible message of the queue once, holding each for the scan; `visit` handles
   * each batch and returns the messages to give back (visibility 0) at the end. `limit` stops
   * early once that many were seen.
   */
  async scan(
    url: string,
    visit: (batch: Received[]) => Promise<Received[]>,
    limit = Infinity,
  ): Promise<void> {
    const seen = new Set<string>()
    const keep: Received[] = []
    try {
      while (seen.size < limit) {
        const messages = await retryTransient('ReceiveMessage', this.#deadline(), () =>
          this.#transport.receive(url, 10, this.#waitSeconds, SCAN_VISIBILITY_SECONDS, false),
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
        keep.map((m) => this.#transport.changeVisibility(url, m.ReceiptHandle, 0, this.#deadline())),
      )
    }
  }

  #deadline(): number {
    return Date.now() + this.#retryTimeoutMs
  }
}

/** A dead-letter queue message as listed. */
export function toDeadLetter(queue: string, message: Received): DeadLetter {
  const attrs = message.MessageAttributes
  const reasonAttr = readString(attrs, ATTR.reason)
  const reason = REASONS.find((r) => r === reasonAttr) ?? 'exhausted'
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
