import type { Message } from '@aws-sdk/client-sqs'
import {
  type Consumer,
  type DeadLetterInfo,
  type DeliveryHandler,
  reconnectDelay,
  type SettleOnceDelivery,
} from '@errand/core'
import { ATTR, decodeBody, readNumber } from './codec.js'
import { SqsDelivery, type SqsDeliveryHost } from './delivery.js'
import { isQueueMissing, sleep } from './errors.js'
import type { QueueNames } from './names.js'
import type { Store } from './store.js'

/** What a consumer needs from its broker. */
export interface ConsumerHost {
  readonly store: Store
  /** The broker's `capabilities.maxDelayMs` (longest nack delay). */
  readonly maxDelayMs: number
  /** True once the broker's `close()` was called. */
  isClosed(): boolean
  /** Throws `ERR_CLOSED` once the broker is closed. */
  assertOpen(what: string): void
  /** URLs of the queue's priority levels, main first (re-resolved after a queue went missing). */
  levelUrls(names: QueueNames, fresh: boolean): Promise<string[]>
  /** URL of the queue's delay queue. */
  delayUrl(names: QueueNames): Promise<string>
  /** A delay-queue message due later than the hold window: hide it again by visibility. */
  hop(url: string, message: Message & { ReceiptHandle: string }, notBefore: number): Promise<void>
  /** Move a due message from the delay queue into its queue. */
  forward(names: QueueNames, delayUrl: string, message: Message & { ReceiptHandle: string }): Promise<void>
  /** Give back a message received after the consumer stopped, without counting a delivery. */
  giveBack(names: QueueNames, url: string, message: Message & { ReceiptHandle: string }): Promise<void>
  resend(names: QueueNames, delivery: SqsDelivery, delayMs: number): Promise<void>
  sendDeadLetter(names: QueueNames, delivery: SqsDelivery, info: DeadLetterInfo): Promise<void>
  /** Report a background failure (the loop backs off and goes on). */
  onError(err: unknown): void
}

/** Settings of one consumer. */
export interface ConsumerSettings {
  readonly names: QueueNames
  readonly prefetch: number
  readonly leaseSeconds: number
  readonly waitTimeSeconds: number
  readonly priorityWaitSeconds: number
  readonly maxReceiveLoops: number
}

type Received = Message & { ReceiptHandle: string }

/** How long a priority level found empty is skipped by a receive loop. */
const PRIORITY_RESCAN_MS = 50

/** Delayed messages due within this long are held in memory and forwarded on time. */
const HOLD_MS = 2_000

/**
 * Visibility of a delay-queue receive, in seconds: the hold ({@link HOLD_MS}) and the forward's
 * send and delete, with room to spare. Short on purpose: a long poll whose client died (a
 * SIGKILLed worker, a cut connection) is still served by SQS, and the message it takes stays
 * hidden for this long. The oldest waiting poll is served first, so with workers dying often most
 * of the waiting polls are dead ones: with 60 s a due message went from dead poll to dead poll for
 * minutes. A forward slower than this (an outage) can forward twice: at-least-once, never lost.
 */
const FORWARD_VISIBILITY_SECONDS = 5

/**
 * Receive loops for one queue. Each loop reserves min(10, free prefetch) slots, long-polls for
 * that many, and hands the messages out; a slot frees when its delivery is settled. Failed
 * receives back off and go on. Cancel stops new polls without aborting the ones in flight (an
 * aborted long poll still takes messages server-side, hiding them for a visibility timeout):
 * what they bring after the cancel goes straight back. One more loop forwards due messages from
 * the queue's delay queue.
 */
export class SqsConsumer implements Consumer, SqsDeliveryHost {
  readonly adapter = 'sqs'
  readonly #host: ConsumerHost
  readonly #settings: ConsumerSettings
  readonly #onDelivery: DeliveryHandler
  readonly #held = new Set<SqsDelivery>()
  /** Delay-queue messages held until due: their timers and give-back. */
  readonly #holds = new Map<NodeJS.Timeout, () => Promise<void>>()
  readonly #stop = new AbortController()
  #free: number
  #slotWaiters: (() => void)[] = []
  #loops: Promise<void>[] = []
  /** Give-backs of messages that a poll brought after the consumer stopped. */
  readonly #givingBack = new Set<Promise<void>>()

  constructor(host: ConsumerHost, settings: ConsumerSettings, onDelivery: DeliveryHandler) {
    this.#host = host
    this.#settings = settings
    this.#onDelivery = onDelivery
    this.#free = settings.prefetch
  }

  get store(): Store {
    return this.#host.store
  }

  get maxDelayMs(): number {
    return this.#host.maxDelayMs
  }

  /** Resolve the queues and start the loops. */
  async start(): Promise<void> {
    const { names, prefetch, maxReceiveLoops } = this.#settings
    const urls = await this.#host.levelUrls(names, false)
    const loops = Math.max(1, Math.min(maxReceiveLoops, Math.ceil(prefetch / 10)))
    for (let i = 0; i < loops; i++) this.#loops.push(this.#loop(urls))
    this.#loops.push(this.#forwardLoop())
  }

  cancel(): Promise<void> {
    this.#stop.abort()
    for (const wake of this.#slotWaiters.splice(0)) wake()
    return Promise.resolve()
  }

  /**
   * Stop, and hand back at once every unsettled delivery and held delayed message. Polls in
   * flight are not waited for (see {@link finished}).
   */
  async close(): Promise<void> {
    await this.cancel()
    const holds = [...this.#holds]
    this.#holds.clear()
    for (const [timer] of holds) clearTimeout(timer)
    // Open deliveries count as settled from here on; SQS gets them back by visibility 0 (a
    // settle on its way finishes instead).
    const released = [...this.#held].filter((d) => d.release())
    await Promise.allSettled([
      ...released.map((d) =>
        this.#host.store.changeVisibility(d.url, d.handle, 0, Math.max(d.leaseEnd, Date.now() + 1000)),
      ),
      ...holds.map(([, giveBack]) => giveBack()),
    ])
  }

  /** Resolves when every loop has ended: the polls in flight returned and gave back what they brought. */
  finished(): Promise<void> {
    return Promise.allSettled(this.#loops)
      .then(() => Promise.allSettled([...this.#givingBack]))
      .then(() => undefined)
  }

  assertOpen(what: string): void {
    this.#host.assertOpen(what)
  }

  allSettling(): boolean {
    for (const d of this.#held) if (d.state !== 'settling') return false
    return true
  }

  released(delivery: SettleOnceDelivery): void {
    if (!this.#held.delete(delivery as SqsDelivery)) return
    this.#free++
    this.#slotWaiters.shift()?.()
  }

  resend(delivery: SqsDelivery, delayMs: number): Promise<void> {
    return this.#host.resend(this.#settings.names, delivery, delayMs)
  }

  sendDeadLetter(delivery: SqsDelivery, info: DeadLetterInfo): Promise<void> {
    return this.#host.sendDeadLetter(this.#settings.names, delivery, info)
  }

  giveBack(delivery: SqsDelivery): Promise<void> {
    return this.#host.giveBack(this.#settings.names, delivery.url, {
      ...delivery.message,
      ReceiptHandle: delivery.handle,
    })
  }

  get #stopped(): boolean {
    return this.#stop.signal.aborted || this.#host.isClosed()
  }

  /** Reserve up to 10 free slots, waiting for one to free; 0 once stopped. */
  async #reserve(): Promise<number> {
    while (!this.#stopped && this.#free <= 0) {
      await new Promise<void>((resolve) => this.#slotWaiters.push(resolve))
    }
    if (this.#stopped) return 0
    const n = Math.min(10, this.#free)
    this.#free -= n
    return n
  }

  #unreserve(n: number): void {
    if (n <= 0) return
    this.#free += n
    for (let i = 0; i < n && this.#slotWaiters.length > 0; i++) this.#slotWaiters.shift()?.()
  }

  async #loop(initialUrls: string[]): Promise<void> {
    let urls = initialUrls
    let failures = 0
    const emptyUntil: number[] = []
    const { leaseSeconds, waitTimeSeconds, priorityWaitSeconds, names } = this.#settings
    while (!this.#stopped) {
      const n = await this.#reserve()
      if (n === 0) break
      const startedAt = Date.now()
      let messages: Received[] = []
      let level = 0
      try {
        if (urls.length === 1) {
          messages = await this.#receive(urls[0] as string, n, waitTimeSeconds)
        } else {
          // Highest level first; the main queue last, with a short long-poll when all are empty.
          // A level found empty is skipped for a moment, so a busy lower level does not pay a
          // round trip per higher level on every receive.
          for (level = urls.length - 1; level >= 0; level--) {
            if (level > 0 && (emptyUntil[level] ?? 0) > Date.now()) continue
            messages = await this.#receive(urls[level] as string, n, level === 0 ? priorityWaitSeconds : 0)
            if (messages.length > 0) break
            emptyUntil[level] = Date.now() + PRIORITY_RESCAN_MS
          }
          level = Math.max(0, level)
        }
        failures = 0
      } catch (err) {
        this.#unreserve(n)
        if (this.#stopped) break
        this.#host.onError(err)
        if (isQueueMissing(err)) urls = await this.#host.levelUrls(names, true).catch(() => urls)
        await sleep(reconnectDelay(++failures), this.#stop.signal)
        continue
      }
      this.#unreserve(n - messages.length)
      const url = urls[level] as string
      for (const message of messages) this.#handle(url, level, message, startedAt, leaseSeconds)
    }
  }

  async #receive(url: string, max: number, waitSeconds: number): Promise<Received[]> {
    const { leaseSeconds, names } = this.#settings
    const messages = await this.#host.store.receive(url, max, waitSeconds, leaseSeconds, names.fifo)
    return messages.filter((m): m is Received => m.ReceiptHandle !== undefined)
  }

  #handle(url: string, level: number, message: Received, startedAt: number, leaseSeconds: number): void {
    if (this.#stopped) {
      this.#unreserve(1)
      // Tracked, so that the client is not destroyed before the original is deleted (a copy left
      // in flight would come back as a duplicate when its visibility ran out).
      const giving = this.#host
        .giveBack(this.#settings.names, url, message)
        .catch((err: unknown) => this.#host.onError(err))
        .finally(() => this.#givingBack.delete(giving))
      this.#givingBack.add(giving)
      return
    }
    const receives = Number(message.Attributes?.ApproximateReceiveCount ?? '1')
    const base = readNumber(message.MessageAttributes, ATTR.base) ?? 0
    const delivery = new SqsDelivery({
      host: this,
      message,
      body: decodeBody(message),
      attempt: base + (Number.isFinite(receives) && receives > 0 ? receives : 1),
      url,
      level,
      receivedAt: startedAt,
      leaseSeconds,
    })
    this.#held.add(delivery)
    try {
      this.#onDelivery(delivery)
    } catch (err) {
      this.#host.onError(err)
    }
  }

  /**
   * Move due messages from the delay queue into the queue: those due within {@link HOLD_MS} wait
   * in a timer (never early), later ones hop on by visibility.
   */
  async #forwardLoop(): Promise<void> {
    const { names, waitTimeSeconds } = this.#settings
    let failures = 0
    let delayUrl: string | undefined
    while (!this.#stopped) {
      try {
        delayUrl ??= await this.#host.delayUrl(names)
        const url = delayUrl
        const messages = await this.#host.store.receive(
          url,
          10,
          waitTimeSeconds,
          FORWARD_VISIBILITY_SECONDS,
          false,
        )
        failures = 0
        await Promise.all(
          messages
            .filter((m): m is Received => m.ReceiptHandle !== undefined)
            .map((m) => this.#scheduleForward(url, m)),
        )
      } catch (err) {
        if (this.#stopped) break
        this.#host.onError(err)
        if (isQueueMissing(err)) delayUrl = undefined
        await sleep(reconnectDelay(++failures), this.#stop.signal)
      }
    }
  }

  async #scheduleForward(url: string, message: Received): Promise<void> {
    const { names } = this.#settings
    const release = () => this.#host.store.changeVisibility(url, message.ReceiptHandle, 0, Date.now() + 5_000)
    if (this.#stopped) return release()
    const notBefore = readNumber(message.MessageAttributes, ATTR.notBefore) ?? 0
    const remaining = notBefore - Date.now()
    if (remaining <= 0) return this.#host.forward(names, url, message)
    if (remaining > HOLD_MS) return this.#host.hop(url, message, notBefore)
    const timer = setTimeout(() => {
      this.#holds.delete(timer)
      void this.#host.forward(names, url, message).catch((err: unknown) => this.#host.onError(err))
    }, remaining + 1)
    this.#holds.set(timer, release)
  }
}
