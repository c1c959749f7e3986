import type { Message } from '@aws-sdk/client-sqs'
import type { Consumer, DeadLetterInfo, DeliveryHandler } from '@errand/core'
import { backoffMs, isQueueMissing, sleep } from './client.js'
import { ATTR, decodeBody, readNumber } from './codec.js'
import { type DeliveryHost, SqsDelivery } from './delivery.js'
import type { QueueNames } from './names.js'
import type { Transport } from './transport.js'

/** What a consumer needs from its broker. */
export interface ConsumerHost {
  readonly transport: Transport
  isClosed(): boolean
  /** URLs of the queue's priority levels, main first (re-resolved after a queue went missing). */
  levelUrls(names: QueueNames, fresh: boolean): Promise<string[]>
  /** URL of a FIFO queue's delay queue. */
  delayUrl(names: QueueNames): Promise<string>
  /** A message received before its not-before time: hop it on, unseen. */
  hop(url: string, message: Message & { ReceiptHandle: string }, notBefore: number): Promise<void>
  /** Move a due message from the delay queue into its FIFO queue. */
  forward(names: QueueNames, delayUrl: string, message: Message & { ReceiptHandle: string }): Promise<void>
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

/**
 * Receive loops for one queue. Each loop reserves min(10, free prefetch) slots, long-polls for
 * that many, and hands the messages out; a slot frees when its delivery is settled. Failed
 * receives back off and go on. Cancel stops new polls without aborting the ones in flight (an
 * aborted long poll still takes messages server-side, hiding them for a visibility timeout):
 * what they bring after the cancel goes straight back with visibility 0.
 */
export class SqsConsumer implements Consumer, DeliveryHost {
  readonly #host: ConsumerHost
  readonly #settings: ConsumerSettings
  readonly #onDelivery: DeliveryHandler
  readonly #held = new Set<SqsDelivery>()
  readonly #stop = new AbortController()
  #free: number
  #slotWaiters: (() => void)[] = []
  #loops: Promise<void>[] = []

  constructor(host: ConsumerHost, settings: ConsumerSettings, onDelivery: DeliveryHandler) {
    this.#host = host
    this.#settings = settings
    this.#onDelivery = onDelivery
    this.#free = settings.prefetch
  }

  get transport(): Transport {
    return this.#host.transport
  }

  /** Resolve the queues and start the loops. */
  async start(): Promise<void> {
    const { names, prefetch, maxReceiveLoops } = this.#settings
    const urls = await this.#host.levelUrls(names, false)
    const loops = Math.max(1, Math.min(maxReceiveLoops, Math.ceil(prefetch / 10)))
    for (let i = 0; i < loops; i++) this.#loops.push(this.#loop(urls))
    if (names.delay !== undefined) this.#loops.push(this.#forwardLoop())
  }

  cancel(): Promise<void> {
    this.#stop.abort()
    for (const wake of this.#slotWaiters.splice(0)) wake()
    return Promise.resolve()
  }

  /** Wait until every loop ended (polls in flight included), then hand back what is unsettled. */
  async close(): Promise<void> {
    await this.cancel()
    await Promise.allSettled(this.#loops)
    await Promise.allSettled([...this.#held].map((d) => d.release()))
  }

  isClosed(): boolean {
    return this.#host.isClosed()
  }

  settled(delivery: SqsDelivery): void {
    if (!this.#held.delete(delivery)) return
    this.#free++
    this.#slotWaiters.shift()?.()
  }

  resend(delivery: SqsDelivery, delayMs: number): Promise<void> {
    return this.#host.resend(this.#settings.names, delivery, delayMs)
  }

  sendDeadLetter(delivery: SqsDelivery, info: DeadLetterInfo): Promise<void> {
    return this.#host.sendDeadLetter(this.#settings.names, delivery, info)
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
          for (level = urls.length - 1; level >= 0; level--) {
            messages = await this.#receive(urls[level] as string, n, level === 0 ? priorityWaitSeconds : 0)
            if (messages.length > 0) break
          }
          level = Math.max(0, level)
        }
        failures = 0
      } catch (err) {
        this.#unreserve(n)
        if (this.#stopped) break
        this.#host.onError(err)
        if (isQueueMissing(err)) urls = await this.#host.levelUrls(names, true).catch(() => urls)
        await sleep(backoffMs(failures++, 200, 10_000), this.#stop.signal)
        continue
      }
      this.#unreserve(n - messages.length)
      const url = urls[level] as string
      for (const message of messages) this.#handle(url, level, message, startedAt, leaseSeconds)
    }
  }

  async #receive(url: string, max: number, waitSeconds: number): Promise<Received[]> {
    const { leaseSeconds, names } = this.#settings
    const messages = await this.#host.transport.receive(url, max, waitSeconds, leaseSeconds, names.fifo)
    return messages.filter((m): m is Received => m.ReceiptHandle !== undefined)
  }

  #handle(url: string, level: number, message: Received, startedAt: number, leaseSeconds: number): void {
    const giveBack = (): void => {
      this.#unreserve(1)
      void this.#host.transport
        .changeVisibility(url, message.ReceiptHandle, 0, Date.now() + 5_000)
        .catch((err: unknown) => this.#host.onError(err))
    }
    if (this.#stopped) {
      giveBack()
      return
    }
    const notBefore = readNumber(message.MessageAttributes, ATTR.notBefore)
    if (notBefore !== undefined && notBefore > Date.now()) {
      this.#unreserve(1)
      void this.#host.hop(url, message, notBefore).catch((err: unknown) => this.#host.onError(err))
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

  /** FIFO only: move due messages from the delay queue into the FIFO queue. */
  async #forwardLoop(): Promise<void> {
    const { names, waitTimeSeconds } = this.#settings
    let failures = 0
    let delayUrl: string | undefined
    while (!this.#stopped) {
      try {
        delayUrl ??= await this.#host.delayUrl(names)
        const messages = await this.#host.transport.receive(delayUrl, 10, waitTimeSeconds, 60, false)
        failures = 0
        const url = delayUrl
        await Promise.all(
          messages
            .filter((m): m is Received => m.ReceiptHandle !== undefined)
            .map((m) => {
              const notBefore = readNumber(m.MessageAttributes, ATTR.notBefore)
              return notBefore !== undefined && notBefore > Date.now()
                ? this.#host.hop(url, m, notBefore)
                : this.#host.forward(names, url, m)
            }),
        )
      } catch (err) {
        if (this.#stopped) break
        this.#host.onError(err)
        if (isQueueMissing(err)) delayUrl = undefined
        await sleep(backoffMs(failures++, 500, 30_000), this.#stop.signal)
      }
    }
  }
}
