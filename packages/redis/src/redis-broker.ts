import { randomBytes } from 'node:crypto'
import {
  type Broker,
  type BrokerCapabilities,
  brokerCapabilities,
  ClosedError,
  type ConsumeOptions,
  type Consumer,
  checkOutgoing,
  type DeadLetter,
  type DeliveryHandler,
  type ListDeadLettersOptions,
  type OutgoingMessage,
  type QueueStats,
} from '@errand/core'
import { LIST_DEAD, PUBLISH, PURGE, PURGE_DEAD, REQUEUE_DEAD, STATS } from './broker-scripts.js'
import { decodeDeadRecord, encodeItem } from './codec.js'
import { Connections } from './connection.js'
import { type QueueKeys, queueKeys } from './keys.js'
import { listQueueNames } from './list-queues.js'
import { type ParsedBrokerOptions, parseBrokerOptions, type RedisBrokerOptions } from './options.js'
import { RedisConsumer } from './redis-consumer.js'
import { SameStore } from './same-store.js'

const ADAPTER = { adapter: 'redis' } as const
/** Longest delay accepted: 2^40 ms (about 34 years); a sorted-set score holds it exactly. */
const MAX_DELAY_MS = 2 ** 40
/** Messages per command when publishing a large batch. */
const PUBLISH_CHUNK = 1000

interface Queue {
  readonly keys: QueueKeys
  readonly list: readonly string[]
}

/**
 * A {@link Broker} on Redis (standalone or Cluster) with leases.
 *
 * Per queue (all keys share the hash tag `{queue}`): one ready list per priority level, a
 * sorted set of delayed messages, a hash of in-flight messages with a sorted set of lease
 * deadlines, and a hash of dead letters. A consumer takes up to its free prefetch in one Lua
 * call that also applies the acks and lease extensions collected since its last call, moves due
 * delayed messages to ready and takes back messages whose lease ran out (redelivered with
 * `attempt + 1`). A plain publish is one `LPUSH`. Idle consumers park on a blocking connection.
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
export class RedisBroker implements Broker {
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
  #closed = false
  readonly #onReady = () => {
    for (const consumer of this.#consumers) consumer.kick()
  }

  /**
   * Takes a URL string or options; does not connect. Throws `InvalidOptionError` naming the
   * field when options are invalid. Without `url` or `client`, uses `REDIS_URL` or
   * `redis://127.0.0.1:6379`.
   */
  constructor(options: RedisBrokerOptions | string = {}) {
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
  async connect(): Promise<void> {
    this.#assertOpen()
    await this.#conns.connect()
    this.#conns.main.off('ready', this.#onReady)
    this.#conns.main.on('ready', this.#onReady)
  }

  /**
   * Stop every consumer, send the settles already asked for, put unsettled deliveries back at
   * the front of their queue (redelivered with `attempt + 1`), then close the connections this
   * broker created. Calling it again does nothing.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const consumers = [...this.#consumers]
    this.#consumers.clear()
    await Promise.allSettled(consumers.map((c) => c.shutdown()))
    this.#conns.main.off('ready', this.#onReady)
    await this.#conns.close()
  }

  /**
   * Store the messages (all are checked first). Resolves once Redis has them: a plain batch is one
   * `LPUSH`, delays and priorities one script call. While Redis is unreachable the call waits for
   * the reconnect, and rejects with `ERR_CONNECTION` if it does not come back in time.
   */
  async publish(queue: string, messages: readonly OutgoingMessage[]): Promise<void> {
    this.#assertOpen()
    const q = this.#queue(queue)
    if (!Array.isArray(messages)) throw new TypeError('publish: messages must be an array')
    const items: Buffer[] = []
    const extras: number[] = []
    let plain = true
    for (let i = 0; i < messages.length; i++) {
      const { body, delayMs: delay, priority } = checkOutgoing(messages[i]!, i, this.capabilities, 'redis')
      if (delay > 0 || priority > 0) plain = false
      items.push(encodeItem(this.#nextId(), priority, body))
      extras.push(delay, priority)
    }
    if (items.length === 0) return
    const main = this.#conns.main
    try {
      const calls: Promise<unknown>[] = []
      for (let start = 0; start < items.length; start += PUBLISH_CHUNK) {
        const chunk = items.slice(start, start + PUBLISH_CHUNK)
        if (plain) {
          calls.push(main.lpush(q.keys.ready[0]!, ...chunk))
        } else {
          const args: (number | Buffer)[] = []
          chunk.forEach((item, j) => {
            args.push(extras[2 * (start + j)]!, extras[2 * (start + j) + 1]!, item)
          })
          calls.push(PUBLISH.run(main, q.list, args))
        }
      }
      await (calls.length === 1 ? calls[0] : Promise.all(calls))
    } catch (err) {
      throw this.#conns.error(`publish to "${queue}"`, err)
    }
  }

  /**
   * Deliver from `queue` to `onDelivery`, at most `prefetch` unsettled at once, each on a lease
   * of `leaseMs` (default: the broker's, 30 s). Acks and extensions issued in the same tick share
   * one round trip with the next fetch.
   */
  async consume(queue: string, onDelivery: DeliveryHandler, options: ConsumeOptions): Promise<Consumer> {
    this.#assertOpen()
    const q = this.#queue(queue)
    if (typeof onDelivery !== 'function') throw new TypeError('consume: onDelivery must be a function')
    const { prefetch, leaseMs } = options ?? {}
    if (!Number.isInteger(prefetch) || prefetch < 1) {
      throw new TypeError(`consume: prefetch must be an integer >= 1, got ${String(prefetch)}`)
    }
    if (leaseMs !== undefined && (!Number.isFinite(leaseMs) || leaseMs <= 0)) {
      throw new TypeError(`consume: leaseMs must be a finite number > 0, got ${String(leaseMs)}`)
    }
    const consumer = new RedisConsumer({
      conns: this.#conns,
      queue,
      keys: q.keys,
      keyList: q.list,
      maxDelayMs: MAX_DELAY_MS,
      prefetch,
      leaseMs: Math.ceil(leaseMs ?? this.#options.leaseMs),
      onDelivery,
      logger: this.#options.logger,
      assertOpen: () => this.#assertOpen(),
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
  async stats(queue: string): Promise<QueueStats> {
    const [ready, delayed, inFlight, dead] = (await this.#run('stats', queue, STATS, [])) as number[]
    return { ready: ready ?? 0, delayed: delayed ?? 0, inFlight: inFlight ?? 0, dead: dead ?? 0 }
  }

  /** Names of the queues holding anything (ready, delayed, in flight or dead), sorted. */
  async listQueues(): Promise<string[]> {
    this.#assertOpen()
    try {
      return await listQueueNames(this.#conns.main, this.#options.keyPrefix)
    } catch (err) {
      throw this.#conns.error('listing queues', err)
    }
  }

  /** Remove ready and delayed messages (not in-flight, not dead); returns the count. */
  async purge(queue: string): Promise<number> {
    return (await this.#run('purge', queue, PURGE, [])) as number
  }

  /** Dead letters of `queue`, oldest first, at most `limit` (default 100). */
  async listDeadLetters(queue: string, options: ListDeadLettersOptions = {}): Promise<DeadLetter[]> {
    const limit = options.limit ?? 100
    if (!Number.isInteger(limit) || limit < 0) {
      throw new TypeError(`listDeadLetters: limit must be an integer >= 0, got ${String(limit)}`)
    }
    if (limit === 0) {
      this.#assertOpen()
      this.#queue(queue)
      return []
    }
    const reply = (await this.#run('listDeadLetters', queue, LIST_DEAD, [limit])) as Buffer[]
    const out: DeadLetter[] = []
    for (let i = 0; i + 1 < reply.length; i += 2) {
      const { header, body } = decodeDeadRecord(reply[i + 1]!)
      out.push({
        id: reply[i]!.toString(),
        queue,
        reason: header.reason,
        error: header.error,
        body: new Uint8Array(body),
        deadAt: header.deadAt,
      })
    }
    return out
  }

  /** Put dead letters (all, or `ids`) back at the end of the queue; returns the count. */
  async requeueDeadLetters(queue: string, ids?: readonly string[]): Promise<number> {
    checkIds(ids)
    if (ids !== undefined) return this.#inChunks(ids, (chunk) => this.#requeue(queue, chunk))
    let moved = 0
    for (;;) {
      const [n, seen] = (await this.#run('requeueDeadLetters', queue, REQUEUE_DEAD, [])) as number[]
      moved += n ?? 0
      if ((seen ?? 0) < 1000) return moved
    }
  }

  /** Delete dead letters (all, or `ids`); returns the count. */
  async purgeDeadLetters(queue: string, ids?: readonly string[]): Promise<number> {
    checkIds(ids)
    if (ids === undefined) return (await this.#run('purgeDeadLetters', queue, PURGE_DEAD, [])) as number
    return this.#inChunks(
      ids,
      async (chunk) => (await this.#run('purgeDeadLetters', queue, PURGE_DEAD, chunk)) as number,
    )
  }

  async #requeue(queue: string, ids: readonly string[]): Promise<number> {
    const [n] = (await this.#run('requeueDeadLetters', queue, REQUEUE_DEAD, ids)) as number[]
    return n ?? 0
  }

  async #inChunks(
    ids: readonly string[],
    run: (chunk: readonly string[]) => Promise<number>,
  ): Promise<number> {
    const unique = [...new Set(ids)]
    let total = 0
    for (let i = 0; i < unique.length; i += 1000) total += await run(unique.slice(i, i + 1000))
    return total
  }

  async #run(
    what: string,
    queue: string,
    script: typeof STATS,
    args: readonly (string | number)[],
  ): Promise<unknown> {
    this.#assertOpen()
    const q = this.#queue(queue)
    try {
      return await script.run(this.#conns.main, q.list, args)
    } catch (err) {
      throw this.#conns.error(`${what} on "${queue}"`, err)
    }
  }

  #queue(queue: string): Queue {
    let q = this.#queues.get(queue)
    if (q === undefined) {
      if (typeof queue !== 'string' || queue.length === 0)
        throw new TypeError('queue must be a non-empty string')
      const keys = queueKeys(this.#options.keyPrefix, queue, this.#options.maxPriority)
      q = { keys, list: [keys.inflight, keys.leases, keys.delayed, keys.dead, keys.deadIndex, ...keys.ready] }
      this.#queues.set(queue, q)
    }
    return q
  }

  #nextId(): string {
    return `${this.#idPrefix}${(this.#seq++).toString(36)}`
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('the broker is closed', ADAPTER)
  }
}

function checkIds(ids: readonly string[] | undefined): void {
  if (ids !== undefined && (!Array.isArray(ids) || ids.some((id) => typeof id !== 'string'))) {
    throw new TypeError('ids must be an array of strings')
  }
}
