import {
  type Consumer,
  type DeadLetterInfo,
  type DeliveryHandler,
  type Logger,
  type ReleaseReason,
  reconnectDelay,
} from '@errand/core'
import { decodeItem, leaseOfRawItem } from './codec.js'
import type { Connections } from './connection.js'
import { RedisDelivery, type RedisDeliveryHost } from './delivery.js'
import { IdleWait } from './idle-wait.js'
import type { QueueKeys } from './keys.js'
import {
  applyReply,
  buildRoundTrip,
  failRoundTrip,
  MAX_BATCH,
  type PendingAck,
  type PendingExtend,
  type RoundTrip,
  takeBatch,
} from './round-trip.js'
import type { BackendLink, RecordWrite } from './same-store.js'
import { CYCLE, deadLetterMessage, nackMessage, releaseLeases } from './store.js'

/** CYCLE's first reply slot when a key of the wrong type stopped it (see store.ts). */
const REFUSED = -2

/** What a consumer needs from its broker. */
export interface ConsumerHost {
  readonly conns: Connections
  readonly queue: string
  readonly keys: QueueKeys
  /** Every key of the queue, in the scripts' KEYS order. */
  readonly keyList: readonly string[]
  readonly maxDelayMs: number
  readonly prefetch: number
  readonly leaseMs: number
  readonly onDelivery: DeliveryHandler
  /** Where failures that have no caller to reject go. */
  readonly logger: Logger
  /** Throws `ERR_CLOSED` naming `what` once the broker is closed. */
  assertOpen(what: string): void
  /** Whether a result backend writes where this broker does (see same-store.ts). */
  sameStore(backend: unknown): BackendLink | false | Promise<BackendLink | false>
}

/**
 * One `consume()` call. A loop of single round trips (the CYCLE script) that each settle the
 * acks and lease extensions collected since the last one and take up to the free prefetch
 * in one go. When a round trip comes back short, the consumer parks on its own blocking
 * connection (`BLMOVE ready ready RIGHT RIGHT timeout`: returns as soon as the ready list holds
 * anything, without taking it), with a timer for the next delayed message or lease deadline;
 * an idle consumer costs one parked connection and no polling.
 * A fused ack (`ackWithRecord`, broker and result backend on one standalone Redis) rides the same
 * round trip: the task record is written by that script too, so at concurrency 1 a finished
 * task's outcome, its ack and the fetch of the next message are one call.
 * Settle-once, lost and the failure policy are core's (`LeasedDelivery`): this consumer runs the
 * store calls, and counts a delivery against the prefetch from hand-out until `released`.
 */
export class RedisConsumer implements Consumer, RedisDeliveryHost {
  readonly adapter = 'redis'
  readonly #host: ConsumerHost
  /**
   * Deliveries counting against the prefetch, by lease member: handed out, until core's delivery
   * says `released` (settled, lost, given back, or its settle failed).
   */
  readonly #held = new Map<string, RedisDelivery>()
  /**
   * Deliveries whose settle failed (no longer counted, still open): given back at close with the
   * held ones, unless a retry settled them meanwhile.
   */
  readonly #unsettled = new Set<RedisDelivery>()
  #acks: PendingAck[] = []
  #extends: PendingExtend[] = []
  /** nack / deadLetter calls in flight (they hold their slot until they resolve). */
  readonly #settling = new Set<Promise<unknown>>()
  #active = true
  #cycling: Promise<void> | undefined
  #scheduled = false
  readonly #idle: IdleWait
  #retry: NodeJS.Timeout | undefined
  /** Backing off after a failed round trip. */
  #pausing = false
  /** Failed round trips in a row (the backoff's attempt number). */
  #failures = 0
  /** The last failure logged in the current run of failures (each distinct one is logged once). */
  #lastFailure: string | undefined

  constructor(host: ConsumerHost) {
    this.#host = host
    this.#idle = new IdleWait(host.conns, host.keys.ready[0]!, {
      // Straight to the fetch (not via setImmediate): this is the latency path of an idle queue.
      ready: () => (this.#active && !this.#pausing && !this.#scheduled ? this.#cycle() : this.#schedule()),
      due: () => this.#schedule(),
      failed: (err) => {
        if (this.#active) this.#failed('waiting for messages', err)
        this.#backOff()
      },
    })
  }

  get maxDelayMs(): number {
    return this.#host.maxDelayMs
  }

  get queue(): string {
    return this.#host.queue
  }

  /** Begin fetching. */
  start(): void {
    this.#idle.start()
    this.#schedule()
  }

  /** Stop fetching; resolves once no further delivery will be handed out. */
  async cancel(): Promise<void> {
    if (!this.#active) return
    this.#active = false
    clearTimeout(this.#retry)
    this.#pausing = false
    this.#idle.stop()
    await this.#cycling
  }

  /**
   * For the broker's close: stop, send the settles already asked for, then put every delivery
   * still unsettled back at the front of the queue (its next delivery counts one more).
   */
  async shutdown(): Promise<void> {
    await this.cancel()
    while (
      this.#cycling !== undefined ||
      this.#acks.length > 0 ||
      this.#extends.length > 0 ||
      this.#settling.size > 0
    ) {
      if (this.#cycling === undefined && (this.#acks.length > 0 || this.#extends.length > 0)) this.#cycle()
      await Promise.allSettled([this.#cycling, ...this.#settling])
    }
    const open = [...this.#held.values(), ...this.#unsettled].filter((d) => d.release())
    this.#held.clear()
    this.#unsettled.clear()
    await releaseLeases(
      this.#host.conns.main,
      this.#host.keyList,
      open.map((d) => d.lease),
      true,
    )
  }

  /** The connection came back: look again (a blocking wait is re-sent by the client itself). */
  kick(): void {
    if (!this.#active) return
    clearTimeout(this.#retry)
    this.#pausing = false
    if (!this.#idle.waiting) this.#schedule()
  }

  assertOpen(what: string): void {
    this.#host.assertOpen(what)
  }

  /** Core's delivery says it stopped counting against the prefetch. */
  released(delivery: RedisDelivery, why: ReleaseReason): void {
    this.#held.delete(delivery.lease)
    // Its settle failed: still ours to give back at close if nobody settles it.
    if (why === 'failed') this.#unsettled.add(delivery)
    else if (why === 'lost') this.#host.logger.warn(String((delivery.lost.reason as Error).message))
    this.#schedule()
  }

  ack(delivery: RedisDelivery): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#acks.push({ delivery, write: undefined, resolve: () => resolve(), reject })
      this.#sendAcks()
    })
  }

  sameStore(backend: unknown): BackendLink | false | Promise<BackendLink | false> {
    return this.#host.sameStore(backend)
  }

  ackWithRecord(delivery: RedisDelivery, write: RecordWrite): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      this.#acks.push({ delivery, write, resolve, reject })
      this.#sendAcks()
    })
  }

  /**
   * Every held delivery is being settled: nothing more will join this batch, send it now (a
   * microtask, not the next turn of the loop). Otherwise wait for the turn to collect more.
   */
  #sendAcks(): void {
    if (this.#acks.length + this.#settling.size >= this.#held.size && !this.#pausing) {
      queueMicrotask(() => this.#cycle())
    } else {
      this.#schedule()
    }
  }

  extend(delivery: RedisDelivery, ms: number): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.#extends.push({ delivery, ms, resolve, reject })
      this.#schedule()
    })
  }

  nack(delivery: RedisDelivery, delayMs: number): Promise<void> {
    return this.#settle(
      'nack',
      nackMessage(this.#host.conns.main, this.#host.keyList, delivery.lease, delayMs),
    )
  }

  deadLetter(delivery: RedisDelivery, info: DeadLetterInfo): Promise<void> {
    const run = deadLetterMessage(this.#host.conns.main, this.#host.keyList, delivery.lease, info)
    return this.#settle('deadLetter', run)
  }

  /** nack / deadLetter: tracked so that close waits for them. */
  async #settle(what: string, run: Promise<unknown>): Promise<void> {
    const tracked = run.finally(() => {
      this.#settling.delete(tracked)
      this.#schedule()
    })
    this.#settling.add(tracked)
    try {
      await tracked
    } catch (err) {
      throw this.#host.conns.error(`${what} on "${this.#host.queue}"`, err)
    }
  }

  #schedule(): void {
    if (this.#scheduled || this.#pausing || this.#cycling !== undefined) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      this.#cycle()
    })
  }

  #cycle(): void {
    try {
      this.#startCycle()
    } catch (err) {
      // Nothing may throw out of the loop (it runs from timers and promise callbacks).
      this.#failed('fetch/settle', err)
      this.#backOff()
    }
  }

  #startCycle(): void {
    if (this.#cycling !== undefined) return
    const [acks, moreAcks] = takeBatch(this.#acks)
    const [extensions, moreExtends] = takeBatch(this.#extends)
    this.#acks = moreAcks
    this.#extends = moreExtends
    // Acks of held deliveries free their slots with this round trip (a retried ack of a delivery
    // whose first settle failed holds none).
    let freed = 0
    for (const a of acks) if (this.#held.has(a.delivery.lease)) freed++
    if (this.#unsettled.size > 0) for (const d of this.#unsettled) if (!d.open) this.#unsettled.delete(d)
    const free = this.#host.prefetch - this.#held.size + freed
    const want =
      this.#active && this.#host.conns.main.status !== 'end' ? Math.max(0, Math.min(free, MAX_BATCH)) : 0
    if (want === 0 && acks.length === 0 && extensions.length === 0) return
    const trip = buildRoundTrip(this.#host.keyList, this.#host.leaseMs, want, acks, extensions)
    this.#cycling = CYCLE.run(this.#host.conns.main, trip.keys, trip.args)
      .then(
        (reply) => this.#onReply(reply as [number, ...Buffer[]], trip),
        (err) => this.#onError(err, trip),
      )
      .catch((err: unknown) => {
        // A bug of ours while handing out a batch: its undelivered messages come back after their
        // lease. Never an unhandled rejection (Node would exit).
        this.#failed('handling a fetched batch', err)
        this.#backOff()
      })
    void this.#cycling.finally(() => {
      this.#cycling = undefined
      if (this.#acks.length > 0 || this.#extends.length > 0 || (this.#active && !this.#idle.waiting))
        this.#schedule()
    })
  }

  #onReply(reply: [number, ...(Buffer | number)[]], trip: RoundTrip): void {
    const first = applyReply(trip, reply, (message) => this.#host.conns.error('setState', new Error(message)))
    if (reply[0] === REFUSED) {
      // A queue key of the wrong type: nothing was taken. Say so and look again later.
      this.#failed('fetch', new Error(String(reply[first])))
      this.#backOff()
      return
    }
    this.#lastFailure = undefined
    this.#failures = 0
    const count = reply.length - first
    if (!this.#active) {
      // Taken after cancel(): never handed out, so back they go without counting a delivery.
      const leases = reply.slice(first).flatMap((item) => leaseOfRawItem(item as Buffer) ?? [])
      if (leases.length > 0) {
        void releaseLeases(this.#host.conns.main, this.#host.keyList, leases, false).catch((err: unknown) =>
          this.#failed(
            'giving back deliveries taken after cancel',
            err,
            '; they come back when their lease runs out',
          ),
        )
      }
      return
    }
    for (let i = first; i < reply.length; i++) {
      const item = reply[i] as Buffer
      const decoded = decodeItem(item)
      if (decoded === undefined) {
        this.#bury(item)
        continue
      }
      const delivery = new RedisDelivery(this, decoded)
      this.#held.set(delivery.lease, delivery)
      try {
        this.#host.onDelivery(delivery)
      } catch (err) {
        // A throwing handler is the caller's bug: report it without stopping the loop (the
        // delivery stays held until it is settled or its lease runs out).
        this.#host.logger.error(
          `[redis] the delivery handler of "${this.#host.queue}" threw: ${describe(err)}`,
          { error: err },
        )
      }
    }
    if (trip.want > 0 && count < trip.want) {
      this.#idle.wakeIn(reply[0])
      this.#idle.park()
    }
  }

  /**
   * An item the script took into flight that is not one (the script checks items with the same
   * rule, so this is a second line of defence): to the dead letters by its lease, atomically.
   */
  #bury(item: Buffer): void {
    const lease = leaseOfRawItem(item)
    this.#host.logger.warn(
      `[redis] an item of "${this.#host.queue}" is not a message the broker wrote; dead-lettering it as undecodable`,
    )
    if (lease === undefined) return // unreadable even for a lease: it comes back when its lease runs out
    deadLetterMessage(this.#host.conns.main, this.#host.keyList, lease, {
      reason: 'undecodable',
      error: { name: 'DecodeError', code: 'ERR_DECODE', message: 'malformed queue item' },
    }).catch((err: unknown) =>
      this.#failed('dead-lettering an undecodable item', err, '; it comes back when its lease runs out'),
    )
  }

  /**
   * Logs a failure nobody awaits; each distinct message once per run of failures (a Redis outage
   * fails every round trip the same way until it ends).
   */
  #failed(what: string, err: unknown, then = '; retrying with backoff'): void {
    const message = `[redis] ${what} on "${this.#host.queue}" failed: ${describe(err)}`
    if (message === this.#lastFailure) return
    this.#lastFailure = message
    this.#host.logger.warn(`${message}${then}`)
  }

  #onError(err: unknown, trip: RoundTrip): void {
    this.#failed('fetch/settle', err)
    failRoundTrip(trip, this.#host.conns.error(`fetch/settle on "${this.#host.queue}"`, err))
    this.#backOff()
  }

  /** After a failure: try again after core's reconnect wait (or at once when the connection comes back). */
  #backOff(): void {
    if (!this.#active) return
    this.#pausing = true
    clearTimeout(this.#retry)
    this.#retry = setTimeout(
      () => {
        this.#pausing = false
        this.#schedule()
      },
      reconnectDelay(++this.#failures),
    )
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
