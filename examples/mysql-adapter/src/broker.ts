import {
  BrokerBase,
  brokerCapabilities,
  type CheckedConsumeOptions,
  type CheckedMessage,
  ClosedError,
  type Consumer,
  consoleLogger,
  type DeadLetter,
  type DeliveryHandler,
  type Logger,
  type QueueStats,
} from '@errand/core'
import { listDead, purgeDead, purgeQueue, queueStats, requeueDead } from './admin.js'
import { MySqlConsumer } from './consumer.js'
import { ADAPTER, type MySqlBrokerOptions, type ResolvedMySqlOptions, resolveOptions } from './options.js'
import { MySqlStore } from './store.js'

const DAY = 86_400_000

/**
 * An Errand broker on MySQL 8 / MariaDB 10.6+ (InnoDB): one row per message, taken with
 * `SELECT … FOR UPDATE SKIP LOCKED` under a lease, deleted at ack. A worked example of a
 * third-party adapter: built only on `@errand/core`'s public API (its adapter kit keeps the
 * lifecycle, the argument checks and the settle-once rules), proven by `@errand/conformance`.
 *
 * @example
 * const broker = new MySqlBroker({ url: 'mysql://root@127.0.0.1:3306/test' })
 */
export class MySqlBroker extends BrokerBase {
  readonly name = ADAPTER
  readonly capabilities = brokerCapabilities({
    maxDelayMs: 365 * DAY,
    maxPriority: 255,
    leases: true,
    maxMessageBytes: 4 * 1024 * 1024,
    maxBatchSize: 1000,
  })
  readonly logger: Logger
  /** Longest an idle consumer waits before looking for other processes' publishes. */
  readonly pollMs: number
  readonly #options: ResolvedMySqlOptions
  /** Kept after cancel too: their deliveries stay valid, and close gives back the unsettled ones. */
  readonly #consumers = new Set<MySqlConsumer>()
  #store: MySqlStore | undefined

  constructor(options: MySqlBrokerOptions & { logger?: Logger }) {
    super()
    const { logger, ...rest } = options
    this.#options = resolveOptions(rest)
    this.logger = logger ?? consoleLogger
    this.pollMs = this.#options.pollMs
  }

  protected async open(): Promise<void> {
    this.#store = await MySqlStore.open(this.#options)
  }

  protected async shutdown(): Promise<void> {
    const consumers = [...this.#consumers]
    this.#consumers.clear()
    await Promise.all(consumers.map((c) => c.cancel()))
    // Give back what was handed out and not settled, at once: another consumer takes it with
    // attempt + 1 instead of waiting for the lease. (A delivery whose settle failed no longer
    // counts as held: it returns when its lease runs out.)
    const held = consumers.flatMap((c) => [...c.held].filter((d) => d.release()))
    if (this.#store === undefined) return
    await this.#store.giveBack(held).catch((err) =>
      this.logger.warn('mysql: could not give back held deliveries; they return after their lease', {
        error: String(err),
      }),
    )
    await this.#store.pool.end()
  }

  /** This table's rule, beyond the base's: at most 191 characters (the index's limit), no NUL. */
  protected override queueProblem(queue: string): string | undefined {
    if (queue.length <= 191 && !queue.includes('\u0000')) return undefined
    return `must be 1-191 characters without NUL, got ${JSON.stringify(queue).slice(0, 60)}`
  }

  #db(): MySqlStore {
    if (this.#store === undefined) {
      throw new ClosedError('mysql broker is not connected: call connect() first', { adapter: ADAPTER })
    }
    return this.#store
  }

  protected publishChecked(queue: string, messages: readonly CheckedMessage[]): Promise<void> {
    return this.#db().publish(queue, messages)
  }

  protected async consumeChecked(
    queue: string,
    onDelivery: DeliveryHandler,
    options: CheckedConsumeOptions,
  ): Promise<Consumer> {
    const leaseMs = options.leaseMs ?? this.#options.leaseMs
    const settings = { queue, prefetch: options.prefetch, leaseMs }
    const consumer = new MySqlConsumer(this, this.#db(), settings, onDelivery)
    this.#consumers.add(consumer)
    return { cancel: () => consumer.cancel() }
  }

  protected queueStats(queue: string): Promise<QueueStats> {
    return queueStats(this.#db(), queue)
  }

  protected purgeQueue(queue: string): Promise<number> {
    return purgeQueue(this.#db(), queue)
  }

  protected deadLetters(queue: string, limit: number): Promise<DeadLetter[]> {
    return listDead(this.#db(), queue, limit)
  }

  protected requeueDead(queue: string, ids: readonly string[] | undefined): Promise<number> {
    return requeueDead(this.#db(), queue, ids)
  }

  protected purgeDead(queue: string, ids: readonly string[] | undefined): Promise<number> {
    return purgeDead(this.#db(), queue, ids)
  }
}
