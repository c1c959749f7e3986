import { randomUUID } from 'node:crypto'
import type { DeadLetter, DeadLetterInfo, DeadLetterReason, QueueStats } from '../broker.js'
import type { SerializedError } from '../errors.js'
import { DueQueue } from './due-queue.js'
import { ReadyQueue } from './ready-queue.js'

/** A message as the memory store keeps it. */
export interface StoredMessage {
  readonly id: string
  /** The bytes as published (a private copy). */
  readonly body: Uint8Array
  readonly priority: number
  /** Deliveries so far; the next delivery's `attempt` is one more. */
  deliveries: number
}

/** A message to add, already validated by the broker. */
export interface NewMessage {
  readonly body: Uint8Array
  readonly delayMs: number
  readonly priority: number
}

/** A consumer as a queue sees it. The broker owns it and builds the `Delivery` objects. */
export interface QueueConsumer {
  /** The broker this consumer belongs to: its closing returns the consumer's deliveries. */
  readonly owner: object
  /** Most deliveries held unsettled at once. */
  readonly prefetch: number
  /** Lease of each delivery in ms; `Infinity` for none. */
  readonly leaseMs: number
  /** Deliveries handed out and not yet settled by their holder (maintained by the broker). */
  unsettled: number
  /** False once canceled: gets nothing more. */
  active: boolean
  /** Hand a delivery over; `token` identifies this delivery (not the message) when settling. */
  deliver(message: StoredMessage, token: number): void
}

interface InFlight {
  readonly token: number
  readonly message: StoredMessage
  readonly consumer: QueueConsumer
  leaseExpiresAt: number
  /** Told when the lease ran out and the message went back to the queue (see {@link watchLease}). */
  lost?: () => void
}

interface DeadEntry {
  readonly message: StoredMessage
  readonly reason: DeadLetterReason
  readonly error: SerializedError | undefined
  readonly deadAt: number
}

/**
 * One queue of a {@link MemoryStore}: ready messages by priority, delayed messages on a timer,
 * in-flight deliveries keyed by a per-delivery token (so that settling a delivery whose lease ran
 * out cannot touch a later delivery of the same message), and dead letters. Deliveries are
 * dispatched on a later turn of the event loop, never inside the call that made them possible.
 */
export class MemoryQueue {
  readonly name: string
  readonly #ready = new ReadyQueue<StoredMessage>()
  readonly #delayed = new DueQueue<StoredMessage>((message) => {
    this.#ready.push(message)
    this.#schedule()
  })
  readonly #leases = new DueQueue<InFlight>((entry) => this.#expire(entry))
  readonly #inFlight = new Map<number, InFlight>()
  readonly #dead = new Map<string, DeadEntry>()
  #consumers: QueueConsumer[] = []
  #nextConsumer = 0
  #nextToken = 1
  #scheduled = false

  constructor(name: string) {
    this.name = name
  }

  /** Store messages: ready at once, or delayed by `delayMs`. */
  publish(messages: readonly NewMessage[]): void {
    const now = Date.now()
    for (const m of messages) {
      const stored: StoredMessage = { id: randomUUID(), body: m.body, priority: m.priority, deliveries: 0 }
      if (m.delayMs > 0) this.#delayed.push(now + m.delayMs, stored)
      else this.#ready.push(stored)
    }
    this.#schedule()
  }

  /** Start handing deliveries to `consumer`. */
  addConsumer(consumer: QueueConsumer): void {
    this.#consumers.push(consumer)
    this.#schedule()
  }

  /** Hand nothing more to `consumer`; its deliveries stay valid. */
  removeConsumer(consumer: QueueConsumer): void {
    consumer.active = false
    this.#consumers = this.#consumers.filter((c) => c !== consumer)
  }

  /**
   * Put every unsettled delivery of `owner`'s consumers (canceled ones included) back at the
   * front of the queue, at once.
   */
  returnUnsettled(owner: object): void {
    const entries = [...this.#inFlight.values()].filter((entry) => entry.consumer.owner === owner)
    for (const entry of entries.reverse()) {
      this.#inFlight.delete(entry.token)
      this.#ready.unshift(entry.message)
    }
    this.#afterSettle()
  }

  /** A consumer's capacity changed (a delivery was settled): try to deliver more. */
  wake(): void {
    this.#schedule()
  }

  /** Remove the delivery's message for good. False when the token is no longer live. */
  ack(token: number): boolean {
    if (!this.#inFlight.delete(token)) return false
    this.#afterSettle()
    return true
  }

  /** Give the delivery's message back, after `delayMs` when positive. */
  nack(token: number, delayMs: number): boolean {
    const entry = this.#inFlight.get(token)
    if (entry === undefined) return false
    this.#inFlight.delete(token)
    if (delayMs > 0) this.#delayed.push(Date.now() + delayMs, entry.message)
    else this.#ready.push(entry.message)
    this.#afterSettle()
    return true
  }

  /** Move the delivery's message to the dead letters. */
  deadLetter(token: number, info: DeadLetterInfo): boolean {
    const entry = this.#inFlight.get(token)
    if (entry === undefined) return false
    this.#inFlight.delete(token)
    this.#dead.set(entry.message.id, {
      message: entry.message,
      reason: info.reason,
      error: info.error === undefined ? undefined : structuredClone(info.error),
      deadAt: Date.now(),
    })
    this.#afterSettle()
    return true
  }

  /** Lengthen the delivery's lease to `ms` from now. */
  extend(token: number, ms: number): boolean {
    const entry = this.#inFlight.get(token)
    if (entry === undefined) return false
    entry.leaseExpiresAt = Date.now() + ms
    this.#leases.push(entry.leaseExpiresAt, entry)
    return true
  }

  /**
   * Call `lost` if the delivery's lease runs out and its message goes back to the queue. It is
   * called on a later turn than the redelivery is offered, so the other consumers get the
   * message before the holder's prefetch slot frees.
   */
  watchLease(token: number, lost: () => void): void {
    const entry = this.#inFlight.get(token)
    if (entry !== undefined) entry.lost = lost
  }

  /** Counts of this queue. */
  stats(): QueueStats {
    return {
      ready: this.#ready.size,
      delayed: this.#delayed.size,
      inFlight: this.#inFlight.size,
      dead: this.#dead.size,
    }
  }

  /** Drop ready and delayed messages; returns the count. */
  purge(): number {
    return this.#ready.clear() + this.#delayed.clear().length
  }

  /** Up to `limit` dead letters, oldest first. */
  listDeadLetters(limit: number): DeadLetter[] {
    const out: DeadLetter[] = []
    for (const entry of this.#dead.values()) {
      if (out.length >= limit) break
      out.push({
        id: entry.message.id,
        queue: this.name,
        reason: entry.reason,
        error: entry.error === undefined ? undefined : structuredClone(entry.error),
        body: entry.message.body.slice(),
        deadAt: entry.deadAt,
      })
    }
    return out
  }

  /** Put dead letters (all, or those of `ids`) back at the end of the queue; returns the count. */
  requeueDeadLetters(ids: readonly string[] | undefined): number {
    const entries = this.#takeDead(ids)
    for (const entry of entries) this.#ready.push(entry.message)
    if (entries.length > 0) this.#schedule()
    return entries.length
  }

  /** Delete dead letters (all, or those of `ids`); returns the count. */
  purgeDeadLetters(ids: readonly string[] | undefined): number {
    return this.#takeDead(ids).length
  }

  /** Stop the timers (no broker is open on the store); messages stay. */
  suspend(): void {
    this.#delayed.suspend()
    this.#leases.suspend()
  }

  /** Re-arm the timers after {@link suspend}. */
  resume(): void {
    this.#delayed.resume()
    this.#leases.resume()
  }

  #takeDead(ids: readonly string[] | undefined): DeadEntry[] {
    if (ids === undefined) {
      const all = [...this.#dead.values()]
      this.#dead.clear()
      return all
    }
    const taken: DeadEntry[] = []
    for (const id of new Set(ids)) {
      const entry = this.#dead.get(id)
      if (entry === undefined) continue
      this.#dead.delete(id)
      taken.push(entry)
    }
    return taken
  }

  #afterSettle(): void {
    // Lease entries are removed lazily; once nothing is in flight they are all stale.
    if (this.#inFlight.size === 0) this.#leases.clear()
    this.#schedule()
  }

  #expire(entry: InFlight): void {
    if (this.#inFlight.get(entry.token) !== entry || entry.leaseExpiresAt > Date.now()) return
    this.#inFlight.delete(entry.token)
    this.#ready.unshift(entry.message)
    this.#afterSettle()
    // After the dispatch just scheduled (setImmediate runs in order).
    if (entry.lost !== undefined) setImmediate(entry.lost)
  }

  #schedule(): void {
    if (this.#scheduled) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      this.#dispatch()
    })
  }

  #dispatch(): void {
    while (this.#ready.size > 0) {
      const consumer = this.#pickConsumer()
      if (consumer === undefined) return
      const message = this.#ready.shift()!
      message.deliveries++
      const token = this.#nextToken++
      const entry: InFlight = { token, message, consumer, leaseExpiresAt: Date.now() + consumer.leaseMs }
      this.#inFlight.set(token, entry)
      if (Number.isFinite(entry.leaseExpiresAt)) this.#leases.push(entry.leaseExpiresAt, entry)
      consumer.unsettled++
      try {
        consumer.deliver(message, token)
      } catch (err) {
        // A throwing handler is a bug in the caller: surface it like an EventEmitter listener
        // would, without breaking delivery to the other consumers. The delivery stays unsettled.
        queueMicrotask(() => {
          throw err
        })
      }
    }
  }

  /** Round robin over active consumers with spare prefetch. */
  #pickConsumer(): QueueConsumer | undefined {
    const n = this.#consumers.length
    for (let i = 0; i < n; i++) {
      const index = (this.#nextConsumer + i) % n
      const consumer = this.#consumers[index]!
      if (consumer.active && consumer.unsettled < consumer.prefetch) {
        this.#nextConsumer = (index + 1) % n
        return consumer
      }
    }
    return undefined
  }
}
