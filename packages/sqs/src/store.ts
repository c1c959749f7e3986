import {
  type BatchResultErrorEntry,
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry,
  type SQSClient,
} from '@aws-sdk/client-sqs'
import { Batcher, type BatchOutcome } from '@errand/core'
import { type Attributes, messageSize } from './codec.js'
import { retryTransient } from './errors.js'

/** One message to send. */
export interface SendEntry {
  readonly text: string
  readonly attrs: Attributes
  readonly delaySeconds?: number
  readonly groupId?: string
  readonly dedupId?: string
}

interface VisibilityEntry {
  readonly handle: string
  readonly seconds: number
}

/** Options of {@link Store}. */
export interface StoreOptions {
  readonly batchWindowMs: number
  readonly maxBatchBytes: number
  readonly requestTimeoutMs: number
}

/** A per-entry failure of a batch call, shaped like an SDK error so it classifies the same. */
function entryError(entry: BatchResultErrorEntry): Error {
  const err = new Error(entry.Message ?? entry.Code ?? 'batch entry failed') as Error & { $fault: string }
  err.name = entry.Code ?? 'BatchEntryFailed'
  err.$fault = entry.SenderFault === false ? 'server' : 'client'
  return err
}

/** Each entry's outcome of a batch call whose entries were sent with the ids "0", "1", … */
function outcomes(count: number, failed: readonly BatchResultErrorEntry[] | undefined): BatchOutcome<void>[] {
  const out: BatchOutcome<void>[] = []
  const byId = new Map((failed ?? []).map((f) => [f.Id, f]))
  for (let i = 0; i < count; i++) {
    const f = byId.get(String(i))
    out.push(f === undefined ? { ok: true, value: undefined } : { ok: false, error: entryError(f) })
  }
  return out
}

/**
 * The SQS calls of the hot path, batched per queue: sends (10 and `maxBatchBytes` per call),
 * deletes and visibility changes (coalesced within `batchWindowMs`), and receives. Transient
 * failures are retried with backoff until the caller's deadline.
 */
export class Store {
  readonly #client: SQSClient
  readonly #options: StoreOptions
  readonly #sends = new Map<string, Batcher<SendEntry, void>>()
  readonly #deletes = new Map<string, Batcher<string, void>>()
  readonly #visibility = new Map<string, Batcher<VisibilityEntry, void>>()
  /** Counts SQS API calls by name (for benchmarks and tests). */
  readonly calls = new Map<string, number>()

  constructor(client: SQSClient, options: StoreOptions) {
    this.#client = client
    this.#options = options
  }

  /** Send one message; resolves once SQS stored it. Retries transient failures until `deadline`. */
  send(url: string, entry: SendEntry, deadline: number): Promise<void> {
    const size = messageSize(entry.text, entry.attrs)
    return retryTransient('SendMessageBatch', deadline, () => this.#sendBatcher(url).add(entry, size))
  }

  /** Delete one message by receipt handle (`now`: do not wait for company). */
  delete(url: string, handle: string, deadline: number, now = false): Promise<void> {
    return retryTransient('DeleteMessageBatch', deadline, () => this.#deleteBatcher(url).add(handle, 0, now))
  }

  /** Change one message's visibility; a stale handle rejects with the SDK-shaped error. */
  changeVisibility(
    url: string,
    handle: string,
    seconds: number,
    deadline: number,
    now = false,
  ): Promise<void> {
    return retryTransient('ChangeMessageVisibilityBatch', deadline, () =>
      this.#visibilityBatcher(url).add({ handle, seconds }, 0, now),
    )
  }

  /**
   * One ReceiveMessage call (the caller owns retry and backoff). Its timeout (`waitSeconds` plus
   * `requestTimeoutMs`) is an unref'd timer of ours rather than the SDK's ref'd one, so that a
   * poll left to finish after `close()` does not hold the process open by itself (see
   * `SocketPools`); a poll that times out fails as a transient `TimeoutError`.
   */
  async receive(
    url: string,
    max: number,
    waitSeconds: number,
    visibilitySeconds: number,
    fifo: boolean,
  ): Promise<Message[]> {
    this.#count('ReceiveMessage')
    const timeout = new AbortController()
    const timer = setTimeout(() => timeout.abort(), waitSeconds * 1000 + this.#options.requestTimeoutMs)
    timer.unref()
    const request = this.#client.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: max,
        WaitTimeSeconds: waitSeconds,
        VisibilityTimeout: visibilitySeconds,
        MessageSystemAttributeNames: fifo
          ? ['ApproximateReceiveCount', 'SentTimestamp', 'MessageGroupId']
          : ['ApproximateReceiveCount', 'SentTimestamp'],
        MessageAttributeNames: ['All'],
      }),
      { requestTimeout: 0, abortSignal: timeout.signal },
    )
    try {
      return (await request).Messages ?? []
    } catch (err) {
      if (!timeout.signal.aborted) throw err
      throw Object.assign(
        new Error(
          `ReceiveMessage got no answer within ${waitSeconds}s + ${this.#options.requestTimeoutMs} ms`,
        ),
        {
          name: 'TimeoutError',
          code: 'ETIMEDOUT',
          cause: err,
        },
      )
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * Send everything pending now (the broker closes: waiting out `batchWindowMs` would only delay
   * it) and wait for the calls in flight.
   */
  async drain(): Promise<void> {
    const all = [...this.#sends.values(), ...this.#deletes.values(), ...this.#visibility.values()]
    await Promise.all(all.map((b) => b.flush()))
  }

  /** Count one API call (calls made outside the store report here too). */
  count(name: string): void {
    this.#count(name)
  }

  #count(name: string): void {
    this.calls.set(name, (this.calls.get(name) ?? 0) + 1)
  }

  #sendBatcher(url: string): Batcher<SendEntry, void> {
    let b = this.#sends.get(url)
    if (b === undefined) {
      b = new Batcher<SendEntry, void>({
        maxItems: 10,
        maxBytes: this.#options.maxBatchBytes,
        lingerMs: 0,
        flush: async (entries) => {
          this.#count('SendMessageBatch')
          const out = await this.#client.send(
            new SendMessageBatchCommand({
              QueueUrl: url,
              Entries: entries.map((e, i) => {
                const req: SendMessageBatchRequestEntry = { Id: String(i), MessageBody: e.text }
                if (Object.keys(e.attrs).length > 0) req.MessageAttributes = e.attrs
                if (e.delaySeconds !== undefined && e.delaySeconds > 0) req.DelaySeconds = e.delaySeconds
                if (e.groupId !== undefined) req.MessageGroupId = e.groupId
                if (e.dedupId !== undefined) req.MessageDeduplicationId = e.dedupId
                return req
              }),
            }),
          )
          return outcomes(entries.length, out.Failed)
        },
      })
      this.#sends.set(url, b)
    }
    return b
  }

  #deleteBatcher(url: string): Batcher<string, void> {
    let b = this.#deletes.get(url)
    if (b === undefined) {
      b = new Batcher<string, void>({
        maxItems: 10,
        lingerMs: this.#options.batchWindowMs,
        flush: async (handles) => {
          this.#count('DeleteMessageBatch')
          const out = await this.#client.send(
            new DeleteMessageBatchCommand({
              QueueUrl: url,
              Entries: handles.map((h, i) => ({ Id: String(i), ReceiptHandle: h })),
            }),
          )
          return outcomes(handles.length, out.Failed)
        },
      })
      this.#deletes.set(url, b)
    }
    return b
  }

  #visibilityBatcher(url: string): Batcher<VisibilityEntry, void> {
    let b = this.#visibility.get(url)
    if (b === undefined) {
      b = new Batcher<VisibilityEntry, void>({
        maxItems: 10,
        lingerMs: this.#options.batchWindowMs,
        flush: async (entries) => {
          this.#count('ChangeMessageVisibilityBatch')
          const out = await this.#client.send(
            new ChangeMessageVisibilityBatchCommand({
              QueueUrl: url,
              Entries: entries.map((e, i) => ({
                Id: String(i),
                ReceiptHandle: e.handle,
                VisibilityTimeout: e.seconds,
              })),
            }),
          )
          return outcomes(entries.length, out.Failed)
        },
      })
      this.#visibility.set(url, b)
    }
    return b
  }
}
