import type { Consumer, DeliveryHandler, Logger } from '@errand/core'
import type { DeliveryOwner, MySqlDelivery } from './mysql-delivery.js'

/** What a consumer needs from its broker. */
export interface ConsumerHost extends Omit<DeliveryOwner, 'settled'> {
  readonly logger: Logger
  readonly pollMs: number
  /** Take up to `n` visible rows of the queue for `leaseMs`. */
  take(queue: string, n: number, leaseMs: number, owner: DeliveryOwner): Promise<MySqlDelivery[]>
  /** When the queue's next invisible row becomes visible (ms since epoch), if any. */
  nextVisibleAt(queue: string): Promise<number | undefined>
  /** Calls `wake` whenever this process publishes to or gives back rows of `queue`. */
  onWake(queue: string, wake: () => void): () => void
}

/**
 * Takes rows in batches up to the free prefetch and hands them out. Idle, it sleeps until the
 * earliest of: a publish in this process, the queue's next delayed or leased row becoming
 * visible, or `pollMs` (publishes of other processes).
 */
export class MySqlConsumer implements Consumer, DeliveryOwner {
  readonly held = new Set<MySqlDelivery>()
  readonly #host: ConsumerHost
  readonly #queue: string
  readonly #onDelivery: DeliveryHandler
  readonly #prefetch: number
  readonly #leaseMs: number
  readonly #unsubscribe: () => void
  #running = true
  #wake: (() => void) | undefined
  #loop: Promise<void> = Promise.resolve()
  #failures = 0

  constructor(
    host: ConsumerHost,
    queue: string,
    onDelivery: DeliveryHandler,
    prefetch: number,
    leaseMs: number,
  ) {
    this.#host = host
    this.#queue = queue
    this.#onDelivery = onDelivery
    this.#prefetch = prefetch
    this.#leaseMs = leaseMs
    this.#unsubscribe = host.onWake(queue, () => this.#wake?.())
  }

  start(): void {
    this.#loop = this.#run()
  }

  async cancel(): Promise<void> {
    this.#running = false
    this.#unsubscribe()
    this.#wake?.()
    await this.#loop
  }

  ack(id: string, take: number): Promise<void> {
    return this.#host.ack(id, take)
  }
  nack(id: string, take: number, delayMs: number): Promise<void> {
    return this.#host.nack(id, take, delayMs)
  }
  deadLetter(...args: Parameters<DeliveryOwner['deadLetter']>): Promise<void> {
    return this.#host.deadLetter(...args)
  }
  extend(id: string, take: number, ms: number): Promise<void> {
    return this.#host.extend(id, take, ms)
  }
  settled(delivery: MySqlDelivery): void {
    this.held.delete(delivery)
    this.#wake?.()
  }

  async #run(): Promise<void> {
    while (this.#running) {
      const free = this.#prefetch - this.held.size
      if (free <= 0) {
        await this.#sleep(this.#host.pollMs)
        continue
      }
      let taken: MySqlDelivery[]
      try {
        taken = await this.#host.take(this.#queue, free, this.#leaseMs, this)
        this.#failures = 0
      } catch (err) {
        // A lost connection or a deadlock: log, back off (up to 5 s) and try again; the rows
        // stay in the table, so nothing is lost while the server is away.
        this.#failures++
        this.#host.logger.warn(`mysql: fetching from "${this.#queue}" failed, retrying`, {
          error: String(err),
        })
        await this.#sleep(Math.min(5_000, 100 * 2 ** Math.min(this.#failures, 6)))
        continue
      }
      if (!this.#running) {
        // Cancelled while taking: give the rows straight back instead of handing them out.
        await Promise.all(taken.map((d) => d.nack().catch(() => {})))
        return
      }
      for (const d of taken) {
        this.held.add(d)
        this.#onDelivery(d)
      }
      if (taken.length === 0) await this.#sleep(await this.#idleWait())
    }
  }

  async #idleWait(): Promise<number> {
    try {
      const next = await this.#host.nextVisibleAt(this.#queue)
      return next === undefined
        ? this.#host.pollMs
        : Math.max(0, Math.min(this.#host.pollMs, next - Date.now()))
    } catch {
      return this.#host.pollMs
    }
  }

  #sleep(ms: number): Promise<void> {
    if (!this.#running) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms)
      function done() {
        clearTimeout(timer)
        resolve()
      }
      this.#wake = () => {
        this.#wake = undefined
        done()
      }
    })
  }
}
