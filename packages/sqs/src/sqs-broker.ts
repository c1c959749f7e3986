import type { SQSClient } from '@aws-sdk/client-sqs'
import {
  BrokerBase,
  type BrokerCapabilities,
  brokerCapabilities,
  type CheckedConsumeOptions,
  type CheckedMessage,
  ConnectionError,
  type Consumer,
  consoleLogger,
  type DeadLetter,
  type DeliveryHandler,
  type Logger,
  maskCredentials,
  maskingLogger,
  type QueueStats,
} from '@errand/core'
import { Admin, toDeadLetter } from './admin.js'
import { createClient, isQueueMissing } from './client.js'
import { encodeBody } from './codec.js'
import { probeEndpoint } from './connect.js'
import { type ConsumerHost, SqsConsumer } from './consumer.js'
import { MAX_VISIBILITY_SECONDS } from './delivery.js'
import { Moves } from './moves.js'
import { type QueueNames, queueNames } from './names.js'
import { type ResolvedSqsOptions, resolveOptions, type SqsBrokerOptions } from './options.js'
import { QueueRegistry } from './queues.js'
import { MAX_DELAY_SECONDS, route } from './sending.js'
import type { SocketPools } from './sockets.js'
import { Transport } from './transport.js'

const ADAPTER = 'sqs'

/** The parts of a resolved SDK endpoint used in messages. */
interface EndpointShape {
  protocol?: string
  hostname?: string
  port?: number
}

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
  readonly #transport: Transport
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
    this.#transport = new Transport(this.client, o)
    this.calls = this.#transport.calls
    this.#registry = new QueueRegistry(this.client, o)
    this.#admin = new Admin(this.client, this.#transport, {
      waitSeconds: o.adminWaitSeconds,
      retryTimeoutMs: o.retryTimeoutMs,
    })
    this.#moves = new Moves(this.#transport, this.#registry, o)
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
    let region: string
    try {
      region = await this.client.config.region()
      if (!region) throw new Error('no region')
    } catch (cause) {
      throw new ConnectionError(
        maskCredentials(
          `no AWS region configured (set the region option, ?region= or AWS_REGION): ${String(cause)}`,
        ),
        { adapter: ADAPTER, cause },
      )
    }
    await probeEndpoint(this.client, await this.#endpointLabel(region), this.#options.connectTimeoutMs)
  }

  /** The endpoint as a user would recognise it (for error messages; credentials masked later). */
  async #endpointLabel(region: string): Promise<string> {
    if (this.#options.endpoint !== undefined) return this.#options.endpoint
    try {
      const ep =
        (await (this.client.config as { endpoint?: () => Promise<EndpointShape> }).endpoint?.()) ?? undefined
      if (ep?.hostname) return `${ep.protocol ?? 'https:'}//${ep.hostname}${ep.port ? `:${ep.port}` : ''}`
    } catch {
      // No fixed endpoint: the SDK derives it from the region.
    }
    return `the AWS endpoint of region ${region}`
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
    await this.#transport.drain()
    // What is left is polls finishing in the background: they must not hold the process open.
    this.#pools?.release()
    this.#background = Promise.allSettled(consumers.map((c) => c.finished()))
      .then(() => this.#transport.drain())
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

  protected async queueStats(queue: string): Promise<QueueStats> {
    const names = this.#names(queue)
    const levels = await Promise.all(
      (await this.#registry.levels(names)).map((url) => this.#admin.counts(url)),
    )
    const dead = await this.#admin.counts(await this.#registry.dead(names))
    let ready = 0
    let delayed = 0
    let inFlight = 0
    for (const c of levels) {
      ready += c.visible
      delayed += c.delayed
      inFlight += c.inFlight
    }
    const d = await this.#admin.counts(await this.#registry.delay(names))
    delayed += d.visible + d.delayed + d.inFlight
    return { ready, delayed, inFlight, dead: dead.visible + dead.delayed + dead.inFlight }
  }

  protected async purgeQueue(queue: string): Promise<number> {
    const names = this.#names(queue)
    const urls = await this.#registry.levels(names)
    const counts = await Promise.all([
      ...urls.map((url) => this.#admin.purge(url)),
      this.#admin.purgeAll(await this.#registry.delay(names)),
    ])
    return counts.reduce((a, b) => a + b, 0)
  }

  protected async deadLetters(queue: string, limit: number): Promise<DeadLetter[]> {
    const names = this.#names(queue)
    const out: DeadLetter[] = []
    await this.#admin.scan(
      await this.#registry.dead(names),
      async (batch) => {
        for (const m of batch) out.push(toDeadLetter(names.logical, m))
        return batch
      },
      limit,
    )
    return out.slice(0, limit)
  }

  protected requeueDead(queue: string, ids: readonly string[] | undefined): Promise<number> {
    return this.#takeDeadLetters(queue, ids, (names, m) => this.#moves.requeue(names, m))
  }

  protected purgeDead(queue: string, ids: readonly string[] | undefined): Promise<number> {
    return this.#takeDeadLetters(queue, ids)
  }

  /** Delete the dead letters of `queue` (all, or `ids`), after `first` (a requeue) for each. */
  async #takeDeadLetters(
    queue: string,
    ids: readonly string[] | undefined,
    first?: (names: QueueNames, message: Parameters<Moves['requeue']>[1]) => Promise<void>,
  ): Promise<number> {
    const names = this.#names(queue)
    const url = await this.#registry.dead(names)
    const wanted = ids === undefined ? undefined : new Set(ids)
    if (wanted?.size === 0) return 0
    let count = 0
    await this.#admin.scan(url, async (batch) => {
      const keep = batch.filter((m) => wanted !== undefined && !wanted.has(m.MessageId))
      await Promise.all(
        batch
          .filter((m) => !keep.includes(m))
          .map(async (m) => {
            await first?.(names, m)
            await this.#transport.delete(url, m.ReceiptHandle, Date.now() + this.#options.retryTimeoutMs)
            count++
          }),
      )
      return keep
    })
    return count
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
      transport: this.#transport,
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
