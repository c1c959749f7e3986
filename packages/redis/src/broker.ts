import { randomBytes } from 'node:crypto'
import {
  BrokerBase,
  type BrokerCapabilities,
  brokerCapabilities,
  type CheckedConsumeOptions,
  type CheckedMessage,
  type Consumer,
  type DeadLetter,
  type DeliveryHandler,
  type QueueStats,
} from '@errand/core'
import {
  deadLetters,
  listQueueNames,
  purgeDead,
  purgeQueue,
  queueStats,
  type RunScript,
  requeueDead,
} from './admin.js'
import { Connections } from './connection.js'
import { RedisConsumer } from './consumer.js'
import { type QueueKeys, queueKeys } from './keys.js'
import { type ParsedBrokerOptions, parseBrokerOptions, type RedisBrokerOptions } from './options.js'
import { PUBLISH_CHUNK, publishCalls, publishMessages } from './publish.js'
import { SameStore } from './same-store.js'

/** Longest delay accepted: 2^40 ms (about 34 years); a sorted-set score holds it exactly. */
const MAX_DELAY_MS = 2 ** 40

interface Queue {
  readonly keys: QueueKeys
  /** Every key of the queue, in the scripts' KEYS order. */
  readonly list: readonly string[]
  /** Publish calls waiting for the end of this tick, to go in one command. */
  batch: PublishBatch | undefined
}

/**
 * Publish calls of one queue made in the same tick (before `process.nextTick` runs: every call
 * made by the promise continuations of one I/O callback), stored in one command (publish.ts
 * `publishCalls`). Every caller waits on the same promise: the command's outcome is theirs.
 */
class PublishBatch {
  readonly calls: (readonly CheckedMessage[])[] = []
  /** Messages in `calls`. */
  count = 0
  readonly done: Promise<void>
  resolve!: () => void
  reject!: (err: unknown) => void

  constructor() {
    this.done = new Promise<void>((resolve, reject) => {
      this.resolve = resolve
      this.reject = reject
    })
  }
}

/**
 * A `Broker` on Redis (standalone or Cluster) with leases.
 *
 * Per queue (all keys share the hash tag `{queue}`): one ready list per priority level, a
 * sorted set of delayed messages, a hash of in-flight messages with a sorted set of lease
 * deadlines, and a hash of dead letters. A consumer takes up to its free prefetch in one Lua
 * call that also applies the acks and lease extensions collected since its last call, moves due
 * delayed messages to ready and takes back messages whose lease ran out (redelivered with
 * `attempt + 1`). A plain publish is one `LPUSH`; the publish calls of one tick
 * on a queue share it (one command, one round trip, each call still resolving only once Redis
 * has its messages). Idle consumers park on a blocking connection.
 * Lifecycle and argument checks are core's `BrokerBase`.
 *
 * Capabilities: `leases: true`, `maxPriority` 9 (option), `maxDelayMs` 2^40, `maxMessageBytes`
 * 10 MiB (option), `maxBatchSize` 1000.
 *
 * @example
 * ```ts
 * const broker = new RedisBroker({ url: 'redis://127.0.0.1:6379' })
 * await broker.connect()
 * await broker.publish('emails', [{ body: new TextEncoder().encode('hi') }])
 * await broker.consume('emails', (d) => void d.ack(), { prefetch: 16 })
 * ```
 */
export class RedisBroker extends BrokerBase {
  readonly name = 'redis'
  readonly capabilities: BrokerCapabilities
  readonly #options: ParsedBrokerOptions
  readonly #conns: Connections
  readonly #queues = new Map<string, Queue>()
  readonly #consumers = new Set<RedisConsumer>()
  /** Which result backends write where this broker does (`Delivery.ackWithRecord`). */
  readonly #sameStore: SameStore
  readonly #idPrefix = randomBytes(6).toString('base64url')
  #seq = 0
  readonly #onReady = () => {
    for (const consumer of this.#consumers) consumer.kick()
  }

  /**
   * Takes a URL string or options; does not connect. Throws `InvalidOptionError` naming the
   * field when options are invalid. Without `url` or `client`, uses `REDIS_URL` or
   * `redis://127.0.0.1:6379`.
   */
  constructor(options: RedisBrokerOptions | string = {}) {
    super()
    this.#options = parseBrokerOptions(options)
    this.#conns = new Connections(this.#options.connection, this.#options.logger)
    this.#sameStore = new SameStore(this.#conns, this.#options.keyPrefix)
    this.capabilities = brokerCapabilities({
      maxDelayMs: MAX_DELAY_MS,
      maxPriority: this.#options.maxPriority,
      leases: true,
      maxMessageBytes: this.#options.maxMessageBytes,
      maxBatchSize: PUBLISH_CHUNK,
      orderedDelivery: false,
    })
  }

  /** Connect (a given client is only checked). Rejects with `ERR_CONNECTION` when Redis is unreachable. */
  protected async open(): Promise<void> {
    await this.#conns.connect()
    this.#conns.main.off('ready', this.#onReady)
    this.#conns.main.on('ready', this.#onReady)
  }

  /**
   * Stop every consumer, send the settles already asked for, put unsettled deliveries back at
   * the front of their queue (redelivered with `attempt + 1`), then close the connections this
   * broker created.
   */
  protected async shutdown(): Promise<void> {
    // Publish calls made before close still go out (their callers were told nothing else).
    const batches: Promise<void>[] = []
    for (const q of this.#queues.values()) {
      if (q.batch !== undefined) batches.push(q.batch.done)
      this.#sendBatch(q, q.batch)
    }
    await Promise.allSettled(batches)
    const consumers = [...this.#consumers]
    this.#consumers.clear()
    await Promise.allSettled(consumers.map((c) => c.shutdown()))
    this.#conns.main.off('ready', this.#onReady)
    await this.#conns.close()
  }

  /**
   * Resolves once Redis has the messages: a plain batch is one `LPUSH`, delays and priorities one
   * script call. Calls of the same tick (before `process.nextTick` runs) go in one such command (at most
   * {@link PUBLISH_CHUNK} messages; a call is never split across commands, and all of them are
   * stored or none). While Redis is unreachable the call waits for the reconnect, and rejects with
   * `ERR_CONNECTION` if it does not come back in time.
   */
  protected async publishChecked(queue: string, messages: readonly CheckedMessage[]): Promise<void> {
    const q = this.#queue(queue)
    try {
      if (messages.length > PUBLISH_CHUNK)
        await publishMessages(this.#conns.main, q.keys, q.list, messages, this.#nextId)
      else await this.#join(q, messages)
    } catch (err) {
      throw this.#conns.error(`publish to "${queue}"`, err)
    }
  }

  /**
   * Deliver from `queue` to `onDelivery`, at most `prefetch` unsettled at once, each on a lease
   * of `leaseMs` (default: the broker's, 30 s). Acks and extensions issued in the same tick share
   * one round trip with the next fetch.
   */
  protected async consumeChecked(
    queue: string,
    onDelivery: DeliveryHandler,
    options: CheckedConsumeOptions,
  ): Promise<Consumer> {
    const q = this.#queue(queue)
    const consumer = new RedisConsumer({
      conns: this.#conns,
      queue,
      keys: q.keys,
      keyList: q.list,
      maxDelayMs: MAX_DELAY_MS,
      prefetch: options.prefetch,
      leaseMs: options.leaseMs ?? this.#options.leaseMs,
      onDelivery,
      logger: this.#options.logger,
      assertOpen: (what) => this.assertOpen(what),
      sameStore: (backend) => this.#sameStore.check(backend),
    })
    this.#consumers.add(consumer)
    consumer.start()
    return {
      cancel: async () => {
        await consumer.cancel()
      },
    }
  }

  /** Ready, delayed, in-flight (leased) and dead counts of `queue`, read atomically. */
  protected queueStats(queue: string): Promise<QueueStats> {
    return queueStats(this.#runner(queue))
  }

  /** Names of the queues holding anything (ready, delayed, in flight or dead), sorted. */
  async listQueues(): Promise<string[]> {
    this.assertOpen('listQueues')
    try {
      return await listQueueNames(this.#conns.main, this.#options.keyPrefix)
    } catch (err) {
      throw this.#conns.error('listing queues', err)
    }
  }

  /** Remove ready and delayed messages (not in-flight, not dead); returns the count. */
  protected purgeQueue(queue: string): Promise<number> {
    return purgeQueue(this.#runner(queue))
  }

  /** Dead letters of `queue`, oldest first, at most `limit`. */
  protected deadLetters(queue: string, limit: number): Promise<DeadLetter[]> {
    return deadLetters(this.#runner(queue), queue, limit)
  }

  /** Put dead letters (all, or `ids`) back at the end of the queue; returns the count. */
  protected requeueDead(queue: string, ids: readonly string[] | undefined): Promise<number> {
    return requeueDead(this.#runner(queue), ids)
  }

  /** Delete dead letters (all, or `ids`); returns the count. */
  protected purgeDead(queue: string, ids: readonly string[] | undefined): Promise<number> {
    return purgeDead(this.#runner(queue), ids)
  }

  /** Runs admin scripts on `queue`'s keys; failures become `ERR_CONNECTION` (or `ERR_CLOSED`). */
  #runner(queue: string): RunScript {
    const q = this.#queue(queue)
    return async (what, script, args) => {
      this.assertOpen(what)
      try {
        return await script.run(this.#conns.main, q.list, args)
      } catch (err) {
        throw this.#conns.error(`${what} on "${queue}"`, err)
      }
    }
  }

  #queue(queue: string): Queue {
    let q = this.#queues.get(queue)
    if (q === undefined) {
      const keys = queueKeys(this.#options.keyPrefix, queue, this.#options.maxPriority)
      const list = [keys.inflight, keys.leases, keys.delayed, keys.dead, keys.deadIndex, ...keys.ready]
      q = { keys, list, batch: undefined }
      this.#queues.set(queue, q)
    }
    return q
  }

  /** Adds one publish call to `q`'s batch of this tick; resolves once Redis has the batch. */
  #join(q: Queue, messages: readonly CheckedMessage[]): Promise<void> {
    let batch = q.batch
    // A batch holds at most one command's worth: a call that does not fit starts the next one.
    if (batch !== undefined && batch.count + messages.length > PUBLISH_CHUNK) {
      this.#sendBatch(q, batch)
      batch = undefined
    }
    if (batch === undefined) {
      batch = new PublishBatch()
      q.batch = batch
      process.nextTick(this.#sendBatch, q, batch)
    }
    batch.calls.push(messages)
    batch.count += messages.length
    return batch.done
  }

  /** Sends `batch` if it is still `q`'s open batch (else it went already). */
  readonly #sendBatch = (q: Queue, batch: PublishBatch | undefined): void => {
    if (batch === undefined || q.batch !== batch) return
    q.batch = undefined
    let sending: Promise<void>
    try {
      sending = publishCalls(this.#conns.main, q.keys, q.list, batch.calls, this.#nextId)
    } catch (err) {
      sending = Promise.reject(err)
    }
    sending.then(batch.resolve, batch.reject)
  }

  readonly #nextId = (): string => `${this.#idPrefix}${(this.#seq++).toString(36)}`
}
