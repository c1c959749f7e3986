import type { SerializedError } from './errors.js'
import type { ResultBackend, SetStateOptions, TaskRecord, TaskState } from './result-backend.js'

/**
 * What a broker can do natively. Static for an adapter class; core reads it to emulate what is
 * missing (delay hops past `maxDelayMs`) and to refuse what it cannot emulate with
 * `ERR_NOT_SUPPORTED`. Build it with {@link brokerCapabilities} so new flags get defaults.
 */
export interface BrokerCapabilities {
  /** Longest delay one publish can carry; core re-publishes in hops beyond it. */
  readonly maxDelayMs: number
  /** Highest priority accepted (0 = priorities unsupported). Higher runs first. */
  readonly maxPriority: number
  /**
   * Deliveries are held on a lease that runs out unless extended with `Delivery.extend` (true:
   * Redis, SQS, Postgres). False: held until settled or until the connection closes (AMQP).
   */
  readonly leases: boolean
  /** Largest message body accepted, in bytes. */
  readonly maxMessageBytes: number
  /** Largest number of messages one `publish` call sends in one round trip. */
  readonly maxBatchSize: number
  /** FIFO ordering per `OutgoingMessage.orderingKey` (SQS FIFO). */
  readonly orderedDelivery: boolean
}

/** Defaults for every capability: the most conservative value. */
export const DEFAULT_BROKER_CAPABILITIES: BrokerCapabilities = Object.freeze({
  maxDelayMs: 0,
  maxPriority: 0,
  leases: false,
  maxMessageBytes: 256 * 1024,
  maxBatchSize: 1,
  orderedDelivery: false,
})

/** Fills unspecified capability flags with {@link DEFAULT_BROKER_CAPABILITIES}. */
export function brokerCapabilities(partial: Partial<BrokerCapabilities>): BrokerCapabilities {
  return Object.freeze({ ...DEFAULT_BROKER_CAPABILITIES, ...partial })
}

/** One message to publish. */
export interface OutgoingMessage {
  /** The encoded envelope. */
  readonly body: Uint8Array
  /** Deliver no earlier than this many ms from now; at most `capabilities.maxDelayMs`. */
  readonly delayMs?: number
  /** 0..`capabilities.maxPriority`; higher first. */
  readonly priority?: number
  /** Stable id of this publish (task id + attempt), for stores that deduplicate (SQS FIFO). */
  readonly dedupId?: string
  /** Ordering group for stores with `orderedDelivery`. */
  readonly orderingKey?: string
}

/** Why a message went to the dead letters. */
export type DeadLetterReason = (typeof DEAD_LETTER_REASONS)[number]

/** Every {@link DeadLetterReason}, for stores that read a reason back as text. */
export const DEAD_LETTER_REASONS = Object.freeze([
  'exhausted',
  'rejected',
  'undecodable',
  'invalid-input',
  'unregistered',
  'canceled',
  'expired',
] as const)

/** True when `value` is one of the {@link DEAD_LETTER_REASONS} (a reason read back from a store). */
export function isDeadLetterReason(value: unknown): value is DeadLetterReason {
  return typeof value === 'string' && (DEAD_LETTER_REASONS as readonly string[]).includes(value)
}

/** What core records when it dead-letters a delivery. */
export interface DeadLetterInfo {
  readonly reason: DeadLetterReason
  readonly error?: SerializedError
}

/**
 * One message handed to a consumer. It stays owned by this consumer until exactly one of
 * `ack`, `nack` or `deadLetter` resolves; until then it counts against the consumer's prefetch.
 * If the consumer goes away without settling it, the broker delivers it again (at once when the
 * connection closes, or when its lease runs out) with `attempt` one higher.
 */
export interface Delivery {
  /** Broker-assigned id of this message, stable across redeliveries. */
  readonly messageId: string
  readonly body: Uint8Array
  /** How many times the broker has delivered this message, starting at 1. */
  readonly attempt: number
  /** Done: remove the message for good. */
  ack(): Promise<void>
  /** Give the message back, to be delivered again (after `delayMs` when given). */
  nack(options?: { delayMs?: number }): Promise<void>
  /** Move the message to the queue's dead letters with a reason, atomically with its removal. */
  deadLetter(info: DeadLetterInfo): Promise<void>
  /** Lengthen the lease to `ms` from now. Present when `capabilities.leases`. */
  extend?(ms: number): Promise<void>
  /**
   * Optional: aborted when the store has taken this message back while it is held (its lease ran
   * out and another consumer may have it, the AMQP channel closed, the SQS receipt is no longer
   * valid), with an `Error` saying why. Core then aborts the handler's `ctx.signal` with that
   * reason and does not settle the delivery: the message runs again elsewhere, and a handler
   * that honours its signal stops instead of running twice side by side. A lost delivery no
   * longer counts against the consumer's prefetch; settling it afterwards does nothing.
   */
  readonly lost?: AbortSignal
  /**
   * Optional fast path: write `record` through `backend` and ack this delivery in one step, when
   * the backend lives in the same store as the broker (one Redis and prefix). Resolves with the
   * state stored (as `ResultBackend.setState`), or `undefined` having done nothing when it cannot
   * (another store): core then writes the record and acks separately.
   */
  ackWithRecord?(
    backend: ResultBackend,
    record: TaskRecord,
    options: SetStateOptions,
  ): Promise<TaskState | undefined>
}

/** Called for each delivery. The broker does not wait for it: flow control is the prefetch. */
export type DeliveryHandler = (delivery: Delivery) => void

/** Options of {@link Broker.consume}. */
export interface ConsumeOptions {
  /** Most deliveries this consumer holds unsettled at once. */
  readonly prefetch: number
  /** Lease of each delivery in ms, where the store has leases. Default: the adapter's. */
  readonly leaseMs?: number
}

/** A running consumer. */
export interface Consumer {
  /**
   * Stop receiving. Resolves once no further delivery will be handed out. Deliveries already
   * handed out stay valid and must still be settled.
   */
  cancel(): Promise<void>
}

/** A counted snapshot of one queue. Counts a store cannot tell are `undefined`. */
export interface QueueStats {
  readonly ready: number
  readonly delayed: number | undefined
  readonly inFlight: number | undefined
  readonly dead: number
}

/** One dead-lettered message, as listed. */
export interface DeadLetter {
  /** Id to requeue or purge this entry by. */
  readonly id: string
  readonly queue: string
  readonly reason: DeadLetterReason
  readonly error: SerializedError | undefined
  /** The original bytes, untouched. */
  readonly body: Uint8Array
  /** When it was dead-lettered (ms since epoch). */
  readonly deadAt: number
}

/** Options of {@link Broker.listDeadLetters}. */
export interface ListDeadLettersOptions {
  /** Default 100. */
  readonly limit?: number
}

/**
 * A message store: publish, deliver, settle. Implementations keep to these semantics; the
 * `@errand/conformance` suite is their definition.
 *
 * Lifecycle: `connect()` before anything else (core calls it once), `close()` once at the end;
 * calls after `close()` reject with `ERR_CLOSED`. Closing with unsettled deliveries returns them
 * to their queue.
 */
export interface Broker {
  /** Short adapter name used in errors and logs (`memory`, `redis`, …). */
  readonly name: string
  readonly capabilities: BrokerCapabilities
  connect(): Promise<void>
  close(): Promise<void>
  /**
   * Durably store messages. Resolves only when every message is accepted by the store; rejects
   * (naming the cause) otherwise. Delays are at most `capabilities.maxDelayMs`.
   */
  publish(queue: string, messages: readonly OutgoingMessage[]): Promise<void>
  /** Start delivering from `queue`. Resolves once the consumer is set up. */
  consume(queue: string, onDelivery: DeliveryHandler, options: ConsumeOptions): Promise<Consumer>
  stats(queue: string): Promise<QueueStats>
  /** Remove every ready and delayed message of the queue (not in-flight, not dead). Returns the count. */
  purge(queue: string): Promise<number>
  listDeadLetters(queue: string, options?: ListDeadLettersOptions): Promise<DeadLetter[]>
  /** Put dead letters back on the queue (all, or the given ids). Returns the count moved. */
  requeueDeadLetters(queue: string, ids?: readonly string[]): Promise<number>
  /** Delete dead letters (all, or the given ids). Returns the count deleted. */
  purgeDeadLetters(queue: string, ids?: readonly string[]): Promise<number>
  /**
   * Names of the queues the store holds anything for (ready, delayed, in flight or dead), sorted.
   * Optional: operators' tools (`errand queues`, the dashboard) use it to find queues no task of
   * theirs names; without it they show the queues of the app's tasks.
   */
  listQueues?(): Promise<string[]>
}
