import {
  type BrokerCapabilities,
  type Consumer,
  type DeliveryHandler,
  type Logger,
  reconnectDelay,
} from '@errand/core'
import { MySqlDelivery, type MySqlDeliveryHost } from './delivery.js'
import { ADAPTER } from './options.js'
import type { HeldRow, MySqlStore } from './store.js'

/** What a consumer needs from its broker (the `MySqlBroker` itself). */
export interface ConsumerHost {
  readonly logger: Logger
  /** Longest idle wait (other processes' publishes are only found by looking). */
  readonly pollMs: number
  readonly capabilities: BrokerCapabilities
  /** Throws `ERR_CLOSED` once the broker is closed. */
  assertOpen(what: string): void
}

/** One `consume` call's arguments, checked. */
export interface ConsumerSettings {
  readonly queue: string
  readonly prefetch: number
  readonly leaseMs: number
}

/**
 * One `consume` call: takes rows in batches up to the free prefetch and hands them out. Idle, it
 * sleeps until the earliest of: a publish or give-back in this process, the queue's next delayed
 * or leased row becoming visible, or `pollMs` (publishes of other processes).
 */
export class MySqlConsumer implements Consumer, MySqlDeliveryHost {
  readonly adapter = ADAPTER
  readonly store: MySqlStore
  readonly maxDelayMs: number
  /** Deliveries handed out that still count against the prefetch (what close gives back). */
  readonly held = new Set<MySqlDelivery>()
  readonly #host: ConsumerHost
  readonly #settings: ConsumerSettings
  readonly #onDelivery: DeliveryHandler
  readonly #unsubscribe: () => void
  #running = true
  #wake: (() => void) | undefined
  readonly #loop: Promise<void>

  constructor(
    host: ConsumerHost,
    store: MySqlStore,
    settings: ConsumerSettings,
    onDelivery: DeliveryHandler,
  ) {
    this.#host = host
    this.store = store
    this.maxDelayMs = host.capabilities.maxDelayMs
    this.#settings = settings
    this.#onDelivery = onDelivery
    this.#unsubscribe = store.onWake(settings.queue, () => this.#wake?.())
    this.#loop = this.#run()
  }

  /** Stop taking rows; deliveries already handed out stay valid. */
  async cancel(): Promise<void> {
    this.#running = false
    this.#unsubscribe()
    this.#wake?.()
    await this.#loop
  }

  assertOpen(what: string): void {
    this.#host.assertOpen(what)
  }

  released(delivery: MySqlDelivery): void {
    this.held.delete(delivery)
    this.#wake?.()
  }

  async #run(): Promise<void> {
    const { queue, prefetch, leaseMs } = this.#settings
    let failures = 0
    while (this.#running) {
      const free = prefetch - this.held.size
      if (free <= 0) {
        await this.#sleep(this.#host.pollMs)
        continue
      }
      let rows: HeldRow[]
      try {
        rows = await this.store.take(queue, free, leaseMs)
        failures = 0
      } catch (err) {
        // A lost connection or a deadlock: log, wait and try again; the rows stay in the table,
        // so nothing is lost while the server is away.
        this.#host.logger.warn(`mysql: fetching from "${queue}" failed, retrying`, { error: String(err) })
        await this.#sleep(reconnectDelay(++failures))
        continue
      }
      if (!this.#running) {
        // Cancelled while taking: give the rows straight back instead of handing them out.
        await this.store.giveBack(rows).catch(() => {})
        return
      }
      for (const row of rows) {
        const delivery = new MySqlDelivery(this, row)
        this.held.add(delivery)
        this.#onDelivery(delivery)
      }
      if (rows.length === 0) await this.#sleep(await this.#idleWait())
    }
  }

  async #idleWait(): Promise<number> {
    const { pollMs } = this.#host
    // A failed look is the fetch's to report: here it only means "look again after pollMs".
    const next = await this.store.nextVisibleAt(this.#settings.queue).catch(() => undefined)
    return next === undefined ? pollMs : Math.max(0, Math.min(pollMs, next - Date.now()))
  }

  /** Sleep `ms`, or until woken (a publish, a give-back, a freed slot, cancel). */
  #sleep(ms: number): Promise<void> {
    if (!this.#running) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.#wake?.(), ms)
      this.#wake = () => {
        this.#wake = undefined
        clearTimeout(timer)
        resolve()
      }
    })
  }
}
