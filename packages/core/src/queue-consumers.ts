import type { Broker, ConsumeOptions, Consumer, Delivery } from './broker.js'
import type { FlowControlStore } from './flow-control.js'
import type { Logger } from './logger.js'

/**
 * A worker's consumers, one per queue, and the pause switch shared by every worker: with a
 * flow-control store, the paused queues are read every `pollMs` (one small read per worker) and
 * a paused queue's consumer is cancelled (deliveries already handed out still run), then made
 * again on resume. Without one, every queue is consumed and nothing is polled.
 */
export class QueueConsumers {
  readonly #consumers = new Map<string, Consumer>()
  #timer: NodeJS.Timeout | undefined
  #closed = false
  #polling: Promise<void> | undefined

  constructor(
    private readonly broker: Broker,
    private readonly queues: readonly string[],
    private readonly onDelivery: (queue: string, d: Delivery) => void,
    private readonly options: ConsumeOptions,
    private readonly pause: { readonly store: FlowControlStore; readonly pollMs: number } | undefined,
    private readonly logger: Logger,
    /** Called when a queue is paused: the worker returns what it buffered from it. */
    private readonly onPaused: (queue: string) => void,
  ) {}

  /** Consume every queue that is not paused; start watching the pause switch. */
  async start(): Promise<void> {
    const paused = this.pause ? new Set(await this.pause.store.pausedQueues()) : new Set<string>()
    try {
      for (const queue of this.queues) if (!paused.has(queue)) await this.#consume(queue)
    } catch (err) {
      await this.cancel()
      throw err
    }
    if (this.pause) {
      this.#timer = setInterval(() => {
        this.#polling ??= this.#poll().finally(() => {
          this.#polling = undefined
        })
      }, this.pause.pollMs)
      this.#timer.unref()
    }
  }

  /** Whether `queue` is being consumed now (false while paused). */
  consuming(queue: string): boolean {
    return this.#consumers.has(queue)
  }

  /** Stop every consumer and the watch. */
  async cancel(): Promise<void> {
    this.#closed = true
    clearInterval(this.#timer)
    await this.#polling
    const all = [...this.#consumers.values()]
    this.#consumers.clear()
    await Promise.allSettled(all.map((c) => c.cancel()))
  }

  async #consume(queue: string): Promise<void> {
    const consumer = await this.broker.consume(queue, (d) => this.onDelivery(queue, d), this.options)
    this.#consumers.set(queue, consumer)
  }

  async #poll(): Promise<void> {
    if (!this.pause || this.#closed) return
    let paused: Set<string>
    try {
      paused = new Set(await this.pause.store.pausedQueues())
    } catch (err) {
      this.logger.warn('could not read the paused queues; consuming as before', { error: String(err) })
      return
    }
    for (const queue of this.queues) {
      if (this.#closed) return
      const consumer = this.#consumers.get(queue)
      if (paused.has(queue) && consumer) {
        this.#consumers.delete(queue)
        this.logger.info('queue paused: no new messages are taken from it', { queue })
        await consumer.cancel().catch(() => {})
        this.onPaused(queue)
      } else if (!paused.has(queue) && !consumer) {
        try {
          await this.#consume(queue)
          this.logger.info('queue resumed', { queue })
        } catch (err) {
          this.logger.warn('could not resume consuming a queue; trying again', { queue, error: String(err) })
        }
      }
    }
  }
}
