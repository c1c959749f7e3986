import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  type QueueAttributeName,
  type SQSClient,
} from '@aws-sdk/client-sqs'
import { InvalidOptionError } from '@errand/core'
import { isQueueMissing, retryTransient, wrapError } from './errors.js'
import type { QueueNames } from './names.js'

/** Largest message SQS accepts (since 2025); set on queues the adapter creates. */
const MAX_QUEUE_MESSAGE_BYTES = '1048576'
/** 14 days: dead letters and delayed messages keep as long as SQS allows. */
const MAX_RETENTION_SECONDS = '1209600'

type AttributeMap = Partial<Record<QueueAttributeName, string>>

/** Options of {@link QueueRegistry}. */
export interface QueueRegistryOptions {
  readonly autoCreate: boolean
  readonly maxReceiveCount: number
  /** Give up resolving after this long of transient errors, in ms. */
  readonly retryTimeoutMs: number
}

/**
 * Queue URLs by name, cached; creates missing queues when `autoCreate` is on. A queue the adapter
 * creates gets its dead-letter queue first and a redrive policy pointing at it (a backstop with a
 * high `maxReceiveCount`: dead-lettering is normally explicit, with reason attributes).
 */
export class QueueRegistry {
  readonly #client: SQSClient
  readonly #options: QueueRegistryOptions
  readonly #urls = new Map<string, Promise<string>>()
  readonly #arns = new Map<string, Promise<string>>()

  constructor(client: SQSClient, options: QueueRegistryOptions) {
    this.#client = client
    this.#options = options
  }

  /** URL of priority level `level` (0 = main queue). */
  level(names: QueueNames, level: number): Promise<string> {
    const name = names.levels[level]
    if (name === undefined) throw new RangeError(`no priority level ${level}`)
    return this.#resolve(name, async () => {
      const attrs: AttributeMap = { MaximumMessageSize: MAX_QUEUE_MESSAGE_BYTES }
      if (names.fifo) attrs.FifoQueue = 'true'
      const deadArn = await this.#arn(names.dead, await this.dead(names))
      attrs.RedrivePolicy = JSON.stringify({
        deadLetterTargetArn: deadArn,
        maxReceiveCount: this.#options.maxReceiveCount,
      })
      return attrs
    })
  }

  /** URLs of every level, main first. */
  levels(names: QueueNames): Promise<string[]> {
    return Promise.all(names.levels.map((_, level) => this.level(names, level)))
  }

  /** URL of the dead-letter queue. */
  dead(names: QueueNames): Promise<string> {
    return this.#resolve(names.dead, async () => {
      const attrs: AttributeMap = {
        MaximumMessageSize: MAX_QUEUE_MESSAGE_BYTES,
        MessageRetentionPeriod: MAX_RETENTION_SECONDS,
      }
      if (names.fifo) attrs.FifoQueue = 'true'
      return attrs
    })
  }

  /** URL of the queue's delay queue (a standard queue, also for a FIFO queue). */
  delay(names: QueueNames): Promise<string> {
    return this.#resolve(names.delay, async () => ({
      MaximumMessageSize: MAX_QUEUE_MESSAGE_BYTES,
      MessageRetentionPeriod: MAX_RETENTION_SECONDS,
    }))
  }

  /** Forget a cached URL (after the queue was found missing). */
  invalidate(name: string): void {
    this.#urls.delete(name)
    this.#arns.delete(name)
  }

  /** Forget every cached URL whose queue has this URL. */
  invalidateUrl(url: string): void {
    const name = url.slice(url.lastIndexOf('/') + 1)
    this.invalidate(name)
  }

  #resolve(name: string, attributes: () => Promise<AttributeMap>): Promise<string> {
    const cached = this.#urls.get(name)
    if (cached !== undefined) return cached
    const promise = this.#lookup(name, attributes)
    this.#urls.set(name, promise)
    promise.catch(() => {
      if (this.#urls.get(name) === promise) this.#urls.delete(name)
    })
    return promise
  }

  async #lookup(name: string, attributes: () => Promise<AttributeMap>): Promise<string> {
    const deadline = Date.now() + this.#options.retryTimeoutMs
    const get = (): Promise<string | undefined> =>
      retryTransient(`GetQueueUrl(${name})`, deadline, async () => {
        try {
          const out = await this.#client.send(new GetQueueUrlCommand({ QueueName: name }))
          return out.QueueUrl
        } catch (err) {
          if (isQueueMissing(err)) return undefined
          throw err
        }
      })
    const existing = await get()
    if (existing !== undefined) return existing
    if (!this.#options.autoCreate) {
      throw new InvalidOptionError('queue', `queue "${name}" does not exist and autoCreate is off`, {
        adapter: 'sqs',
      })
    }
    const attrs = await attributes()
    try {
      const out = await retryTransient(`CreateQueue(${name})`, deadline, () =>
        this.#client.send(new CreateQueueCommand({ QueueName: name, Attributes: attrs })),
      )
      if (out.QueueUrl === undefined) throw new Error('CreateQueue returned no QueueUrl')
      return out.QueueUrl
    } catch (err) {
      // Created meanwhile by someone else with other attributes: use theirs.
      const again = await get()
      if (again !== undefined) return again
      throw wrapError(`CreateQueue(${name})`, err)
    }
  }

  #arn(name: string, url: string): Promise<string> {
    const cached = this.#arns.get(name)
    if (cached !== undefined) return cached
    const deadline = Date.now() + this.#options.retryTimeoutMs
    const promise = retryTransient(`GetQueueAttributes(${name})`, deadline, async () => {
      const out = await this.#client.send(
        new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }),
      )
      const arn = out.Attributes?.QueueArn
      if (arn === undefined) throw new Error(`queue ${name} has no QueueArn`)
      return arn
    })
    this.#arns.set(name, promise)
    promise.catch(() => this.#arns.delete(name))
    return promise
  }
}
