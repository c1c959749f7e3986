import type {
  Broker,
  BrokerCapabilities,
  ConsumeOptions,
  Consumer,
  DeadLetter,
  DeliveryHandler,
  ListDeadLettersOptions,
  OutgoingMessage,
  QueueStats,
} from '../broker.js'
import { InvalidOptionError } from '../errors.js'
import { type CheckedMessage, checkOutgoing } from '../outgoing.js'
import { queueProblem } from '../wire-check.js'
import { type CheckedConsumeOptions, checkConsumeOptions } from './consume-options.js'
import { Lifecycle } from './lifecycle.js'

/**
 * The part of a broker every adapter shares, written once: connect once, close once, `ERR_CLOSED`
 * after close, and every argument checked the same way before the adapter sees it (queue names,
 * each outgoing message against the capabilities, consume options, dead-letter ids and limits).
 * An adapter extends it and implements the `open`/`shutdown` steps and the store operations,
 * which receive checked arguments only.
 *
 * @example
 * ```ts
 * class MyBroker extends BrokerBase {
 *   readonly name = 'my'
 *   readonly capabilities = brokerCapabilities({ leases: true, maxDelayMs: 86_400_000 })
 *   protected async open() { … }
 *   protected async shutdown() { … }
 *   protected async publishChecked(queue: string, messages: readonly CheckedMessage[]) { … }
 *   // …
 * }
 * ```
 */
export abstract class BrokerBase implements Broker {
  abstract readonly name: string
  abstract readonly capabilities: BrokerCapabilities
  #lifecycle: Lifecycle | undefined

  /** Connect-once and closed state, shared with the adapter's consumers and deliveries. */
  protected get lifecycle(): Lifecycle {
    // Created on first use: `name` is set by the subclass after this constructor ran.
    this.#lifecycle ??= new Lifecycle(this.name, 'broker')
    return this.#lifecycle
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.lifecycle.closed
  }

  /** Throws `ERR_CLOSED` naming `what` once `close()` was called. */
  assertOpen(what: string): void {
    this.lifecycle.assertOpen(what)
  }

  connect(): Promise<void> {
    return this.lifecycle.connect(() => this.open())
  }

  close(): Promise<void> {
    return this.lifecycle.close(() => this.shutdown())
  }

  async publish(queue: string, messages: readonly OutgoingMessage[]): Promise<void> {
    const checked = this.checkPublish('publish', queue, messages)
    if (checked.length === 0) return
    return this.publishChecked(queue, checked)
  }

  /**
   * The checks of `publish`, for an adapter's own publish variant (a publish inside the caller's
   * transaction): `ERR_CLOSED` after close (naming `what`), the queue name, and each message
   * against the capabilities. Returns the checked messages (none when `messages` is empty).
   */
  protected checkPublish(
    what: string,
    queue: string,
    messages: readonly OutgoingMessage[],
  ): readonly CheckedMessage[] {
    this.assertOpen(what)
    this.checkQueue(queue)
    if (!Array.isArray(messages)) throw new TypeError(`${what}: messages must be an array`)
    return messages.map((m, i) => checkOutgoing(m, i, this.capabilities, this.name))
  }

  async consume(queue: string, onDelivery: DeliveryHandler, options: ConsumeOptions): Promise<Consumer> {
    this.assertOpen('consume')
    this.checkQueue(queue)
    if (typeof onDelivery !== 'function') throw new TypeError('consume: onDelivery must be a function')
    return this.consumeChecked(queue, onDelivery, checkConsumeOptions(options, this.name))
  }

  async stats(queue: string): Promise<QueueStats> {
    this.assertOpen('stats')
    this.checkQueue(queue)
    return this.queueStats(queue)
  }

  async purge(queue: string): Promise<number> {
    this.assertOpen('purge')
    this.checkQueue(queue)
    return this.purgeQueue(queue)
  }

  async listDeadLetters(queue: string, options: ListDeadLettersOptions = {}): Promise<DeadLetter[]> {
    this.assertOpen('listDeadLetters')
    this.checkQueue(queue)
    const limit = options?.limit ?? 100
    // No upper bound: the CLI and tools list every dead letter of a queue.
    if (!Number.isInteger(limit) || limit < 1) {
      throw new InvalidOptionError('limit', `expected an integer >= 1, got ${String(limit)}`, {
        adapter: this.name,
      })
    }
    return this.deadLetters(queue, limit)
  }

  async requeueDeadLetters(queue: string, ids?: readonly string[]): Promise<number> {
    this.assertOpen('requeueDeadLetters')
    this.checkQueue(queue)
    return this.requeueDead(queue, this.checkIds(ids))
  }

  async purgeDeadLetters(queue: string, ids?: readonly string[]): Promise<number> {
    this.assertOpen('purgeDeadLetters')
    this.checkQueue(queue)
    return this.purgeDead(queue, this.checkIds(ids))
  }

  /**
   * Throws `ERR_INVALID_OPTION` (option `queue`) unless `queue` can name a queue here: a string,
   * then the adapter's own rule ({@link BrokerBase.queueProblem}) first, so its message says
   * which part is wrong, then the wire format's (1 to 200 characters).
   */
  protected checkQueue(queue: string): void {
    const problem =
      typeof queue === 'string' ? (this.queueProblem(queue) ?? queueProblem(queue)) : queueProblem(queue)
    if (problem !== undefined) throw new InvalidOptionError('queue', problem, { adapter: this.name })
  }

  /**
   * What is wrong with `queue` (a string) as a queue name of this store, beyond the wire
   * format's rule, or `undefined` when nothing is. An adapter with stricter names (allowed
   * characters, a shorter limit, reserved suffixes) overrides it; the base allows every name.
   */
  protected queueProblem(_queue: string): string | undefined {
    return undefined
  }

  #idsProblem(ids: unknown): string | undefined {
    if (!Array.isArray(ids)) return 'expected an array of dead-letter ids'
    const bad = ids.findIndex((id) => typeof id !== 'string' || id.length === 0)
    return bad === -1 ? undefined : `ids[${bad}] is not a non-empty string`
  }

  /** `undefined` (all) or the ids, checked to be non-empty strings. */
  protected checkIds(ids: readonly string[] | undefined): readonly string[] | undefined {
    if (ids === undefined) return undefined
    const problem = this.#idsProblem(ids)
    if (problem !== undefined) throw new InvalidOptionError('ids', problem, { adapter: this.name })
    return ids
  }

  /** Connect to the store (runs once; a failure may be retried by another `connect()`). */
  protected abstract open(): Promise<void>
  /** Close the store's connections, giving unsettled deliveries back (runs once). */
  protected abstract shutdown(): Promise<void>
  /** `publish` with every message checked (at least one). */
  protected abstract publishChecked(queue: string, messages: readonly CheckedMessage[]): Promise<void>
  /** `consume` with the queue, handler and options checked. */
  protected abstract consumeChecked(
    queue: string,
    onDelivery: DeliveryHandler,
    options: CheckedConsumeOptions,
  ): Promise<Consumer>
  /** `stats` of a checked queue name. */
  protected abstract queueStats(queue: string): Promise<QueueStats>
  /** `purge` of a checked queue name. */
  protected abstract purgeQueue(queue: string): Promise<number>
  /** `listDeadLetters` with a checked limit. */
  protected abstract deadLetters(queue: string, limit: number): Promise<DeadLetter[]>
  /** `requeueDeadLetters` with checked ids (`undefined`: all). */
  protected abstract requeueDead(queue: string, ids: readonly string[] | undefined): Promise<number>
  /** `purgeDeadLetters` with checked ids (`undefined`: all). */
  protected abstract purgeDead(queue: string, ids: readonly string[] | undefined): Promise<number>
}
