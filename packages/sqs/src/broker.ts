import type { SQSClient } from '@aws-sdk/client-sqs'
import {
  BrokerBase,
  type BrokerCapabilities,
  brokerCapabilities,
  type CheckedConsumeOptions,
  type CheckedMessage,
  type Consumer,
  consoleLogger,
  type DeadLetter,
  type DeliveryHandler,
  type Logger,
  maskingLogger,
  type QueueStats,
} from '@errand/core'
import { Admin } from './admin.js'
import { encodeBody } from './codec.js'
import { checkReachable, createClient } from './connection.js'
import { type ConsumerHost, SqsConsumer } from './consumer.js'
import { MAX_VISIBILITY_SECONDS } from './delivery.js'
import { isQueueMissing } from './errors.js'
import { Moves } from './moves.js'
import { type QueueNames, queueNames } from './names.js'
import { type ResolvedSqsOptions, resolveOptions, type SqsBrokerOptions } from './options.js'
import { QueueRegistry } from './queues.js'
import { MAX_DELAY_SECONDS, route } from './sending.js'
import type { SocketPools } from './sockets.js'
import { Store } from './store.js'

const ADAPTER = 'sqs'

/**
 * An Errand broker on Amazon SQS (or an SQS-compatible endpoint).
 *
 * - Leases are visibility timeouts: `extend` is ChangeMessageVisibility, `attempt` is
 *   ApproximateReceiveCount, `nack({ delayMs })` sets the visibility (re-sent when over 12 h).
 * - Delays up to 15 minutes per message (core hops longer ones), to the millisecond, never
 *   early: delayed messages wait in the queue's standard delay queue `<name>-delay` and the
 *   queue's consumers forward them when due.
 * - FIFO queues (`.fifo`, or every queue with `fifo: true`): `orderingKey` is the message group,
 *   `dedupId` the deduplication id.
 * - Dead letters go to `<name>-dead` with reason attributes.
 * - Priorities only with `priorityLevels` (one queue per level).
 *
 * @example
 * ```ts
 * const broker = new SqsBroker({ region: 'eu-west-1' })
 * await broker.connect()
 * await broker.publish('emails', [{ body: new TextEncoder().encode('{"v":1}') }])
 * ```
 */
export class SqsBroker extends BrokerBase {
  readonly name = ADAPTER
  readonly capabilities: BrokerCapabilities
  /** The SDK client (yours when passed in options). */
  readonly client: SQSClient
  /** SQS API calls made so far, by operation (receives, batches, admin calls). */
  readonly calls: ReadonlyMap<string, number>
  readonly #options: ResolvedSqsOptions
  readonly #ownsClient: boolean
  /** Socket pools of the client the broker made (undefined for a client passed in). */
  readonly #pools: SocketPools | undefined
  readonly #store: Store
  readonly #registry: QueueRegistry
  readonly #admin: Admin
  readonly #moves: Moves
  readonly #consumers = new Set<SqsConsumer>()
  readonly #onError: (err: unknown) => void
  readonly #logger: Logger
  #background: Promise<void> | undefined

  constructor(options: SqsBrokerOptions = {}) {
    super()
    this.#options = resolveOptions(options)
    const o = this.#options
    this.#logger = maskingLogger(o.logger ?? consoleLogger)
    this.#ownsClient = o.client === undefined
    if (o.client === undefined) {
      const created = createClient(o, this.#logger)
      this.client = created.client
      this.#pools = created.pools
    } else {
      this.client = o.client
    }
    this.capabilities = brokerCapabilities({
      maxDelayMs: MAX_DELAY_SECONDS * 1000,
      maxPriority: o.priorityLevels,
      leases: true,
      maxMessageBytes: o.maxMessageBytes,
      maxBatchSize: 10,
      orderedDelivery: o.fifo,
    })
    this.#store = new Store(this.client, o)
    this.calls = this.#store.calls
    this.#registry = new QueueRegistry(this.client, o)
    this.#moves = new Moves(this.#store, this.#registry, o)
    this.#admin = new Admin(this.client, this.#store, this.#registry, this.#moves, {
      waitSeconds: o.adminWaitSeconds,
      retryTimeoutMs: o.retryTimeoutMs,
    })
    this.#onError = o.onError ?? rateLimitedWarning(this.#logger)
  }

  /**
   * Check the configuration (a region must resolve) and, the first time, that the endpoint
   * answers (one GetQueueUrl, bounded by `connectTimeoutMs`): an endpoint that is down fails here
   * at once with `ERR_CONNECTION` naming it, not after `retryTimeoutMs` of retries in the first
   * publish. Does not create queues. Once connected, outages are waited out (retries with backoff).
   * (`connect()` runs this once, through core's `BrokerBase`; a failed one is tried again.)
   */
  protected async open(): Promise<void> {
    await checkReachable(this.client, this.#options.endpoint, this.#options.connectTimeoutMs)
  }

  /**
   * Stop consuming, hand back unsettled deliveries (visibility 0) and flush pending batches.
   * Long polls in flight are not aborted (SQS would still take messages for a cut poll and hide
   * them for their visibility timeout): they finish in the background within `waitTimeSeconds`,
   * give back whatever they bring, and then the client (if the broker made it) is destroyed.
   * Let the process exit by itself rather than calling `process.exit()` right after `close()`.
   * (`close()` runs this once, through core's `BrokerBase`.)
   */
  protected async shutdown(): Promise<void> {
    const consumers = [...this.#consumers]
    await Promise.allSettled(consumers.map((c) => c.close()))
    await this.#store.drain()
    // What is left is polls finishing in the background: they must not hold the process open.
    this.#pools?.release()
    this.#background = Promise.allSettled(consumers.map((c) => c.finished()))
      .then(() => this.#store.drain())
      .then(() => {
        if (this.#ownsClient) this.client.destroy()
      })
  }

  /**
   * Resolves once `close()` and the background work it left (polls in flight) are done. (Was
   * `closed()`, a name core's `BrokerBase` now gives the closed flag.)
   */
  async finished(): Promise<void> {
    if (!this.closed) return
    await this.close() // already closing: shares the first call's promise
    await this.#background
  }

  /** Queue names are SQS names with room for the derived queues (see `queueNames`). */
  protected override checkQueue(queue: string): void {
    super.checkQueue(queue)
    this.#names(queue)
  }

  protected async publishChecked(queue: string, messages: readonly CheckedMessage[]): Promise<void> {
    const names = this.#names(queue)
    const { defaultGroupId } = this.#options
    await Promise.all(
      messages.map((m) => {
        const { text, attrs } = encodeBody(m.body)
        const routed = route(
          names,
          {
            text,
            attrs,
            level: m.priority,
            delayMs: m.delayMs,
            base: 0,
            dedupId: m.dedupId,
            groupId: m.orderingKey,
          },
          defaultGroupId,
        )
        return this.#retryMissing(names, () => this.#moves.sendRouted(names, routed))
      }),
    )
  }

  protected async consumeChecked(
    queue: string,
    onDelivery: DeliveryHandler,
    options: CheckedConsumeOptions,
  ): Promise<Consumer> {
    const names = this.#names(queue)
    const leaseMs = options.leaseMs ?? this.#options.leaseMs
    const consumer = new SqsConsumer(
      this.#consumerHost(),
      {
        names,
        prefetch: options.prefetch,
        leaseSeconds: Math.min(MAX_VISIBILITY_SECONDS, Math.max(1, Math.ceil(leaseMs / 1000))),
        waitTimeSeconds: this.#options.waitTimeSeconds,
        priorityWaitSeconds: Math.min(this.#options.priorityWaitSeconds, this.#options.waitTimeSeconds || 1),
        maxReceiveLoops: this.#options.maxReceiveLoops,
      },
      onDelivery,
    )
    this.#consumers.add(consumer)
    await consumer.start()
    return { cancel: () => consumer.cancel() }
  }

  protected queueStats(queue: string): Promise<QueueStats> {
    return this.#admin.stats(this.#names(queue))
  }

  protected purgeQueue(queue: string): Promise<number> {
    return this.#admin.purge(this.#names(queue))
  }

  protected deadLetters(queue: string, limit: number): Promise<DeadLetter[]> {
    return this.#admin.deadLetters(this.#names(queue), limit)
  }

  protected requeueDead(queue: string, ids: readonly string[] | undefined): Promise<number> {
    return this.#admin.requeueDead(this.#names(queue), ids)
  }

  protected purgeDead(queue: string, ids: readonly string[] | undefined): Promise<number> {
    return this.#admin.purgeDead(this.#names(queue), ids)
  }

  #names(queue: string): QueueNames {
    return queueNames(queue, this.#options)
  }

  /** Run `fn`; if a queue turned out missing (deleted behind our back), forget its URL and retry once. */
  async #retryMissing<T>(names: QueueNames, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      if (!isQueueMissing(err)) throw err
      for (const name of [...names.levels, names.dead, names.delay]) this.#registry.invalidate(name)
      return fn()
    }
  }

  #consumerHost(): ConsumerHost {
    return {
      store: this.#store,
      maxDelayMs: this.capabilities.maxDelayMs,
      isClosed: () => this.closed,
      assertOpen: (what) => this.assertOpen(what),
      levelUrls: (names, fresh) => {
        if (fresh) for (const name of names.levels) this.#registry.invalidate(name)
        return this.#registry.levels(names)
      },
      delayUrl: (names) => this.#registry.delay(names),
      hop: (url, message, notBefore) => this.#moves.hop(url, message, notBefore),
      forward: (names, delayUrl, message) => this.#moves.forward(names, delayUrl, message),
      giveBack: (names, url, message) => this.#moves.giveBack(names, url, message),
      resend: (names, delivery, delayMs) => this.#moves.resend(names, delivery, delayMs),
      sendDeadLetter: (names, delivery, info) => this.#moves.deadLetter(names, delivery, info),
      onError: (err) => this.#onError(err),
    }
  }
}

/**
 * Default background-error report: one warning per 10 s to the broker's logger. Receive loops
 * retry for ever with backoff, so an outage would otherwise write a line per loop per retry.
 */
function rateLimitedWarning(logger: Logger): (err: unknown) => void {
  let last = 0
  return (err) => {
    const now = Date.now()
    if (now - last < 10_000) return
    last = now
    logger.warn(
      `[sqs] background work failed (it backs off and goes on): ${err instanceof Error ? err.message : String(err)}`,
    )
  }
}
