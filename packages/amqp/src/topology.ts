import { InvalidOptionError } from '@errand/core'
import type { Channel, Options } from 'amqplib'
import { type ConnectionManager, closeQuietly, type Session, serverCode, wrap } from './connection.js'
import {
  arrivalPattern,
  deadQueueName,
  delayExchangeName,
  delayQueueName,
  levelQueuePattern,
  levelTtlMs,
  MAX_DELAY_LEVELS,
  passDownPattern,
} from './names.js'
import type { AmqpQueueType } from './options.js'

const ADAPTER = { adapter: 'amqp' } as const
/** Channels used at once to declare delay levels. */
const FAN_OUT = 8

/** One declaration step on a channel. */
export type ChannelTask = (ch: Channel) => Promise<unknown>

/** How queues are declared. */
export interface TopologySettings {
  readonly queueType: AmqpQueueType
  readonly maxPriority: number
  readonly delayLevels: number
  readonly queueExpiresMs: number | undefined
  readonly reconnectWaitMs: number
}

/**
 * Declares what a queue needs — the work queue and `<q>.dead` on first use, the delay levels on
 * the first delayed publish — once per connection (RabbitMQ may have restarted in between), and
 * runs admin calls on the shared admin channel across reconnects.
 */
export class Topology {
  readonly #conn: ConnectionManager
  readonly #settings: TopologySettings
  #generation = -1
  readonly #queues = new Map<string, Promise<void>>()
  readonly #ready = new Set<string>()
  /** Per queue: level → its declaration (queue + binding). */
  readonly #levels = new Map<string, Map<number, Promise<void>>>()
  /** Per queue: the levels known declared, as a bit mask. */
  readonly #levelMask = new Map<string, number>()
  /** Per queue: the binding from level 0's exchange home. */
  readonly #arrivals = new Map<string, Promise<void>>()
  #exchanges: Promise<void> | undefined
  #exchangesTop = -1

  constructor(conn: ConnectionManager, settings: TopologySettings) {
    this.#conn = conn
    this.#settings = settings
  }

  /** True when `queue` and its dead-letter queue are known declared on the live connection. */
  isReady(queue: string): boolean {
    const session = this.#conn.current
    return session !== undefined && session.generation === this.#generation && this.#ready.has(queue)
  }

  /** Declare `queue` and `<queue>.dead` (once per connection). */
  ensureQueue(queue: string): Promise<void> {
    this.#sync()
    let pending = this.#queues.get(queue)
    if (pending === undefined) {
      const generation = this.#generation
      pending = this.admin(async (ch) => {
        await ch.assertQueue(queue, this.workQueueOptions())
        await ch.assertQueue(deadQueueName(queue), this.deadQueueOptions())
      }, queue).then(
        () => {
          if (this.#generation === generation) this.#ready.add(queue)
        },
        (err: unknown) => {
          this.#queues.delete(queue)
          throw err
        },
      )
      this.#queues.set(queue, pending)
    }
    return pending
  }

  /**
   * Declare the delay levels of `queue` whose bits are set in `mask` (those a delay needs: a
   * delay of `d` ms visits the levels of the bits of `d`), the shared exchanges, and the binding
   * home from level 0 — each once per connection. Returns undefined when all are declared.
   */
  ensureLevels(queue: string, mask: number): Promise<void> | undefined {
    this.#sync()
    const known = this.#levelMask.get(queue) ?? 0
    if ((mask & ~known) === 0 && this.#arrivals.has(queue)) return undefined
    return this.#declareLevels(queue, mask)
  }

  async #declareLevels(queue: string, mask: number): Promise<void> {
    await this.ensureQueue(queue)
    await this.#ensureExchanges(31 - Math.clz32(mask))
    const generation = this.#generation
    const pending: Promise<unknown>[] = []
    const tasks: ChannelTask[] = []
    let arrival = this.#arrivals.get(queue)
    if (arrival === undefined) {
      const declared = deferred()
      arrival = declared.promise
      this.#arrivals.set(queue, arrival)
      tasks.push((ch) =>
        ch
          .bindQueue(queue, delayExchangeName(0), arrivalPattern(queue))
          .then(declared.resolve, declared.reject),
      )
    }
    pending.push(arrival)
    const levels = this.#levelPromises(queue)
    for (let level = 0; level < MAX_DELAY_LEVELS; level++) {
      if ((mask & (2 ** level)) === 0) continue
      let declaring = levels.get(level)
      if (declaring === undefined) {
        const declared = deferred()
        declaring = declared.promise
        levels.set(level, declaring)
        const name = delayQueueName(queue, level)
        tasks.push(async (ch) => {
          try {
            await ch.assertQueue(name, this.levelQueueOptions(queue, level))
            await ch.bindQueue(name, delayExchangeName(level), levelQueuePattern(queue, level))
            declared.resolve()
          } catch (err) {
            declared.reject(err)
            throw err
          }
        })
      }
      pending.push(declaring)
    }
    try {
      if (tasks.length > 0) await this.fanOut(tasks, queue)
      await Promise.all(pending)
    } catch (err) {
      if (this.#generation === generation) this.forget(queue)
      throw err
    }
    if (this.#generation === generation) this.#levelMask.set(queue, (this.#levelMask.get(queue) ?? 0) | mask)
  }

  #levelPromises(queue: string): Map<number, Promise<void>> {
    let levels = this.#levels.get(queue)
    if (levels === undefined) {
      levels = new Map()
      this.#levels.set(queue, levels)
    }
    return levels
  }

  /**
   * The delay levels of `queue` that exist on the server (declared by any broker), with their
   * message counts: a passive check of every level, each on a throw-away channel, because a miss
   * (404) closes the channel. About a dozen milliseconds; for `stats` and `purge`.
   */
  async existingLevels(queue: string): Promise<Map<number, number>> {
    const session = await this.#conn.session()
    const found = new Map<number, number>()
    await Promise.all(
      Array.from({ length: MAX_DELAY_LEVELS }, async (_, level) => {
        const ch = await session.openChannel()
        try {
          found.set(level, (await ch.checkQueue(delayQueueName(queue, level))).messageCount)
        } catch (err) {
          if (serverCode(err) !== 404) throw wrap(err, `checking the delay queues of "${queue}"`)
        } finally {
          await closeQuietly(ch)
        }
      }),
    )
    return found
  }

  /** Forget everything declared (something was deleted behind our back): declare again on use. */
  reset(): void {
    this.#clear()
  }

  /** Forget what was declared for `queue` (it was deleted behind our back). */
  forget(queue: string): void {
    this.#queues.delete(queue)
    this.#ready.delete(queue)
    this.#levels.delete(queue)
    this.#levelMask.delete(queue)
    this.#arrivals.delete(queue)
  }

  /**
   * Run `fn` on the admin channel, waiting out a reconnect (up to `reconnectWaitMs`) and
   * retrying on a fresh channel when the old one died under it. A refusal by RabbitMQ is not
   * retried: 406 on a declaration becomes `ERR_INVALID_OPTION` naming the clashing option.
   */
  async admin<T>(fn: (ch: Channel, session: Session) => Promise<T>, queue?: string): Promise<T> {
    const deadline = Date.now() + this.#settings.reconnectWaitMs
    for (let attempt = 1; ; attempt++) {
      const session = await this.#conn.session()
      try {
        return await fn(await session.adminChannel(), session)
      } catch (err) {
        const code = serverCode(err)
        if (code === 406 && queue !== undefined) throw refusal(queue, err)
        if (code !== undefined) throw wrap(err, 'RabbitMQ refused an admin call')
        if (this.#conn.closed || Date.now() >= deadline) throw wrap(err, 'an admin call failed')
        // The channel or the connection died under us: retry on a fresh one shortly.
        await this.#conn.retryPause(attempt, deadline)
      }
    }
  }

  /** Arguments of the work queue. */
  workQueueOptions(): Options.AssertQueue {
    const args: Record<string, unknown> = {}
    if (this.#settings.queueType === 'quorum') args['x-queue-type'] = 'quorum'
    else if (this.#settings.maxPriority > 0) args['x-max-priority'] = this.#settings.maxPriority
    if (this.#settings.queueExpiresMs !== undefined) args['x-expires'] = this.#settings.queueExpiresMs
    return { durable: true, arguments: args }
  }

  /**
   * Arguments of `<q>.dead`: always a classic queue. Dead letters are read with `basic.get` and
   * put back by closing the channel; a quorum queue returns such messages asynchronously, so a
   * scan right after a list could miss them.
   */
  deadQueueOptions(): Options.AssertQueue {
    const args: Record<string, unknown> = {}
    if (this.#settings.queueExpiresMs !== undefined) args['x-expires'] = this.#settings.queueExpiresMs
    return { durable: true, arguments: args }
  }

  /** Arguments of `<q>.delay.<level>`: fixed TTL, dead-lettered one level down (or home). */
  levelQueueOptions(queue: string, level: number): Options.AssertQueue {
    const args: Record<string, unknown> = { 'x-message-ttl': levelTtlMs(level) }
    if (level === 0) {
      args['x-dead-letter-exchange'] = ''
      args['x-dead-letter-routing-key'] = queue
    } else {
      args['x-dead-letter-exchange'] = delayExchangeName(level - 1)
    }
    if (this.#settings.queueExpiresMs !== undefined) args['x-expires'] = this.#settings.queueExpiresMs
    return { durable: true, arguments: args }
  }

  /** The shared exchanges of levels 0..`top` and the bindings between them, once per connection. */
  #ensureExchanges(top: number): Promise<void> {
    let declaring = this.#exchanges
    if (declaring === undefined || this.#exchangesTop < top) {
      const from = declaring === undefined ? 0 : this.#exchangesTop + 1
      const previous = declaring ?? Promise.resolve()
      this.#exchangesTop = top
      const levels = Array.from({ length: top - from + 1 }, (_, i) => from + i)
      declaring = (async () => {
        await previous
        await this.fanOut(
          levels.map(
            (level) => (ch) => ch.assertExchange(delayExchangeName(level), 'topic', { durable: true }),
          ),
        )
        await this.fanOut(
          levels
            .filter((level) => level > 0)
            .map(
              (level) => (ch) =>
                ch.bindExchange(
                  delayExchangeName(level - 1),
                  delayExchangeName(level),
                  passDownPattern(level),
                ),
            ),
        )
      })()
      declaring.catch(() => {
        if (this.#exchanges === declaring) {
          this.#exchanges = undefined
          this.#exchangesTop = -1
        }
      })
      this.#exchanges = declaring
    }
    return declaring
  }

  /**
   * Run independent declarations on a few channels at once: RabbitMQ takes ~10 ms to create a
   * durable queue or binding, one at a time per channel. Retried as a whole (it is idempotent)
   * when the connection drops, within `reconnectWaitMs`.
   */
  async fanOut(tasks: readonly ChannelTask[], queue?: string): Promise<void> {
    const deadline = Date.now() + this.#settings.reconnectWaitMs
    for (let attempt = 1; ; attempt++) {
      const session = await this.#conn.session()
      const channels: Channel[] = []
      try {
        const width = Math.min(FAN_OUT, tasks.length)
        for (let i = 0; i < width; i++) channels.push(await session.openChannel())
        let next = 0
        await Promise.all(
          channels.map(async (ch) => {
            while (next < tasks.length) await tasks[next++]!(ch)
          }),
        )
        return
      } catch (err) {
        const code = serverCode(err)
        if (code === 406 && queue !== undefined) throw refusal(queue, err)
        if (code !== undefined) throw wrap(err, 'RabbitMQ refused a declaration')
        if (this.#conn.closed || Date.now() >= deadline) throw wrap(err, 'declaring queues failed')
        await this.#conn.retryPause(attempt, deadline)
      } finally {
        await Promise.all(channels.map(closeQuietly))
      }
    }
  }

  /** A new connection may be a restarted server: declare everything again. */
  #sync(): void {
    const generation = this.#conn.current?.generation ?? this.#generation
    if (generation === this.#generation) return
    this.#generation = generation
    this.#clear()
  }

  #clear(): void {
    this.#queues.clear()
    this.#ready.clear()
    this.#levels.clear()
    this.#levelMask.clear()
    this.#arrivals.clear()
    this.#exchanges = undefined
    this.#exchangesTop = -1
  }
}

function refusal(queue: string, err: unknown): InvalidOptionError {
  const text = String((err as Error).message)
  const option = text.includes('x-max-priority')
    ? 'maxPriority'
    : text.includes('x-queue-type')
      ? 'queueType'
      : text.includes('x-expires')
        ? 'queueExpiresMs'
        : 'queue'
  return new InvalidOptionError(
    option,
    `RabbitMQ refused to declare the queues of "${queue}": one exists with other arguments (${text}). ` +
      'Use the options it was declared with, or delete it (with its messages) to change them.',
    { ...ADAPTER, cause: err },
  )
}

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (err: unknown) => void } {
  let resolve!: () => void
  let reject!: (err: unknown) => void
  const promise = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  promise.catch(() => {})
  return { promise, resolve, reject }
}
