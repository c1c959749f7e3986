import {
  type DeadLetterInfo,
  type DeliveryHost,
  DeliveryLostError,
  LeasedDelivery,
  type ResultBackend,
  type SetStateOptions,
  type TaskRecord,
  type TaskState,
} from '@errand/core'
import type { DecodedItem } from './codec.js'
import type { BackendLink, RecordWrite } from './same-store.js'

/** What a Redis delivery needs from the consumer that handed it out: its store calls. */
export interface RedisDeliveryHost extends DeliveryHost {
  /** Queue name, for the lost reason. */
  readonly queue: string
  /** Ack (collected into the consumer's next round trip). */
  ack(delivery: RedisDelivery): Promise<void>
  nack(delivery: RedisDelivery, delayMs: number): Promise<void>
  deadLetter(delivery: RedisDelivery, info: DeadLetterInfo): Promise<void>
  /** Lengthen the lease; false when the lease member is gone. */
  extend(delivery: RedisDelivery, ms: number): Promise<boolean>
  /** The backend's link when it writes where this broker does (see same-store.ts), else false. */
  sameStore(backend: unknown): BackendLink | false | Promise<BackendLink | false>
  /** Write the record and ack in one script; resolves with the state stored. */
  ackWithRecord(delivery: RedisDelivery, write: RecordWrite): Promise<string>
}

/**
 * A delivery from a {@link RedisBroker}: delivery number `attempt` of message `messageId`, on a
 * lease named `<id>:<attempt>`. Settle-once rules, failure policy and `lost` are core's
 * (`LeasedDelivery`); every script is fenced on the lease member, so a retried settle after a
 * reply that was lost, or a settle after the lease ran out and the message went elsewhere,
 * changes nothing.
 * `ackWithRecord` writes a task record and acks in the consumer's next round trip (one script,
 * which also fetches the next messages) when the backend is a RedisResultBackend on the same
 * standalone server, db and key prefix.
 */
export class RedisDelivery extends LeasedDelivery {
  /** The lease member: `<id>:<attempt>`. */
  readonly lease: string
  readonly #host: RedisDeliveryHost

  constructor(host: RedisDeliveryHost, item: DecodedItem) {
    super(host, { messageId: item.id, body: item.body, attempt: item.deliveries + 1 })
    this.#host = host
    this.lease = `${item.id}:${this.attempt}`
  }

  /**
   * Write `record` through `backend` (a RedisResultBackend on this broker's standalone server, db
   * and key prefix) and ack, in one script: what `backend.setState` then `ack()` would do
   * (CANCELED is never overwritten, a final record is published to its waiters), atomically.
   * Resolves with the state stored; `undefined` having done nothing when the backend is elsewhere
   * (or on a cluster), or when this delivery is already settled, being settled, or lost.
   */
  async ackWithRecord(
    backend: ResultBackend,
    record: TaskRecord,
    options: SetStateOptions,
  ): Promise<TaskState | undefined> {
    if (!this.open) {
      // As a second ack would: share the settle on its way (or ERR_CLOSED), change nothing.
      await this.settle('ackWithRecord', async () => {})
      return undefined
    }
    const checked = this.#host.sameStore(backend)
    const link = checked instanceof Promise ? await checked : checked
    if (link === false) return undefined
    const write = link.prepare(record, options)
    let stored: string | undefined
    // A settle that started while the probe ran wins: settle() then shares it (stored stays unset).
    await this.settle('ackWithRecord', async () => {
      stored = await this.#host.ackWithRecord(this, write)
    })
    return stored as TaskState | undefined
  }

  protected storeAck(): Promise<void> {
    return this.#host.ack(this)
  }

  protected storeNack(delayMs: number): Promise<void> {
    return this.#host.nack(this, delayMs)
  }

  protected storeDeadLetter(info: DeadLetterInfo): Promise<void> {
    return this.#host.deadLetter(this, info)
  }

  protected storeExtend(ms: number): Promise<boolean> {
    return this.#host.extend(this, ms)
  }

  protected lostReason(): DeliveryLostError {
    return new DeliveryLostError(
      `the lease of message ${this.messageId} (delivery ${this.attempt}) on "${this.#host.queue}" ran out and the message was taken back; it runs again (maybe elsewhere already)`,
      { adapter: 'redis' },
    )
  }
}
