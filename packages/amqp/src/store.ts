import { randomUUID } from 'node:crypto'
import { type CheckedMessage, ClosedError, ConnectionError, type DeadLetterInfo } from '@errand/core'
import type { ConfirmChannel, ConsumeMessage, Message, Options } from 'amqplib'
import { type ConnectionManager, serverCode, wrap } from './connection.js'
import { carriedHeaders, deadLetterHeaders, H_DELIVERIES, messageIdOf } from './headers.js'
import { deadQueueName, delayRoute } from './names.js'
import type { Topology } from './topology.js'

const ADAPTER = { adapter: 'amqp' } as const

/** One message ready for the wire. `options.messageId` is always set. */
export interface Outgoing {
  readonly exchange: string
  readonly routingKey: string
  readonly content: Buffer
  readonly options: Options.Publish & { messageId: string }
}

/** Some messages found no queue (`mandatory` returned them): the topology is gone. */
export class UnroutableError extends ConnectionError {
  constructor(count: number) {
    super(`${count} message(s) could not be routed to a queue (was it deleted?)`, ADAPTER)
  }
}

interface ChannelState {
  /** Message ids returned as unroutable, counted (a nack copy shares its original's id). */
  readonly returned: Map<string, number>
  /** Why the server closed the channel, if it did. */
  closeError: Error | undefined
}

interface Outcome {
  /** Not confirmed because the channel closed: safe to send again. */
  readonly lost: Outgoing[]
  readonly nacked: number
  readonly returned: number
}

const states = new WeakMap<ConfirmChannel, ChannelState>()

function stateOf(ch: ConfirmChannel): ChannelState {
  let state = states.get(ch)
  if (state === undefined) {
    const s: ChannelState = { returned: new Map(), closeError: undefined }
    ch.on('return', (message: Message) => {
      const id = String(message.properties.messageId)
      s.returned.set(id, (s.returned.get(id) ?? 0) + 1)
    })
    ch.on('error', (err: Error) => {
      s.closeError = err
    })
    states.set(ch, s)
    state = s
  }
  return state
}

function takeReturned(state: ChannelState, id: string): boolean {
  const n = state.returned.get(id)
  if (n === undefined) return false
  if (n <= 1) state.returned.delete(id)
  else state.returned.set(id, n - 1)
  return true
}

/**
 * What the broker and its consumers write to RabbitMQ: new messages, the copies a nack or a
 * re-count publishes, and dead letters. Every write declares what its route needs first (the
 * queue, its delay levels) and resolves once RabbitMQ confirmed it.
 *
 * Publishing happens on the shared confirm channel: a whole batch is written, then RabbitMQ's
 * confirms are awaited (one callback per message, no round trip per message). Persistent
 * messages on durable queues: a confirm means the message is on disk (or on a quorum majority).
 * Messages unconfirmed when the channel or connection dropped are sent again once a new one is
 * up (within `reconnectWaitMs`), so a publish never vanishes; it may arrive twice.
 */
export class Store {
  readonly #conn: ConnectionManager
  readonly #topology: Topology
  readonly #waitMs: number

  constructor(conn: ConnectionManager, topology: Topology, reconnectWaitMs: number) {
    this.#conn = conn
    this.#topology = topology
    this.#waitMs = reconnectWaitMs
  }

  /** Publish checked messages to `queue` (persistent, each with a fresh message id). */
  publish(queue: string, messages: readonly CheckedMessage[]): Promise<void> {
    let levels = 0
    const items = messages.map((message) => {
      levels |= message.delayMs
      return outgoing(queue, message)
    })
    return this.#send(queue, items, levels)
  }

  /** A copy of a delivered message with the deliveries counted so far, to `queue` after `delayMs`. */
  republish(queue: string, message: ConsumeMessage, deliveries: number, delayMs: number): Promise<void> {
    const headers = carriedHeaders(message)
    headers[H_DELIVERIES] = deliveries
    const options = copyOptions(message, headers)
    const route = delayMs > 0 ? delayRoute(queue, delayMs) : { exchange: '', routingKey: queue }
    const items = [{ ...route, content: message.content, options }]
    return this.#send(queue, items, delayMs > 0 ? Math.ceil(delayMs) : 0)
  }

  /** A delivered message to `<queue>.dead`, with the reason, error and attempt in its headers. */
  deadLetter(queue: string, message: ConsumeMessage, info: DeadLetterInfo, attempt: number): Promise<void> {
    const headers = deadLetterHeaders(message, queue, info.reason, info.error, attempt)
    const options = copyOptions(message, headers)
    return this.#send(
      queue,
      [{ exchange: '', routingKey: deadQueueName(queue), content: message.content, options }],
      0,
    )
  }

  /** Publish `items` to `queue`, first declaring its delay levels in the bit mask `levels`. */
  async #send(queue: string, items: readonly Outgoing[], levels: number): Promise<void> {
    for (let tries = 0; ; tries++) {
      if (!this.#topology.isReady(queue)) await this.#topology.ensureQueue(queue)
      if (levels !== 0) await this.#topology.ensureLevels(queue, levels)
      try {
        await this.#confirmed(items)
        return
      } catch (err) {
        // Someone deleted a queue (unroutable) or a delay exchange (404) under us: declare again, once.
        if (tries > 0) throw err
        if (err instanceof UnroutableError) this.#topology.forget(queue)
        else if (serverCode((err as Error).cause) === 404) this.#topology.reset()
        else throw err
      }
    }
  }

  /** Resolves when RabbitMQ confirmed every message. */
  async #confirmed(items: readonly Outgoing[]): Promise<void> {
    if (items.length === 0) return
    const deadline = Date.now() + this.#waitMs
    let pending = items
    for (let attempt = 1; ; attempt++) {
      const session = this.#conn.current ?? (await this.#conn.session())
      let ch: ConfirmChannel
      try {
        ch = await session.confirmChannel()
      } catch (err) {
        if (this.#conn.closed)
          throw new ClosedError('the broker closed before the publish was confirmed', ADAPTER)
        if (Date.now() >= deadline) throw wrap(err, 'cannot open a publishing channel')
        await this.#conn.retryPause(attempt, deadline)
        continue
      }
      const state = stateOf(ch)
      const outcome = await publishOn(ch, state, pending)
      if (outcome.nacked > 0) {
        throw new ConnectionError(`RabbitMQ refused ${outcome.nacked} message(s) (basic.nack)`, ADAPTER)
      }
      if (outcome.returned > 0) throw new UnroutableError(outcome.returned)
      if (outcome.lost.length === 0) return
      if (this.#conn.closed)
        throw new ClosedError('the broker closed before the publish was confirmed', ADAPTER)
      const refused = state.closeError
      if (refused !== undefined && serverCode(refused) !== undefined && serverCode(refused) !== 320) {
        throw wrap(refused, 'RabbitMQ closed the publishing channel')
      }
      if (Date.now() >= deadline) {
        throw new ConnectionError(
          `${outcome.lost.length} message(s) not confirmed: the connection did not come back within ${this.#waitMs} ms`,
          ADAPTER,
        )
      }
      pending = outcome.lost
      await this.#conn.retryPause(attempt, deadline)
    }
  }
}

/** A checked message as it goes on the wire: persistent, mandatory, with a fresh message id. */
function outgoing(queue: string, message: CheckedMessage): Outgoing {
  const options: Outgoing['options'] = { persistent: true, mandatory: true, messageId: randomUUID() }
  if (message.priority > 0) options.priority = message.priority
  const body = message.body
  const content = Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  const route = message.delayMs > 0 ? delayRoute(queue, message.delayMs) : { exchange: '', routingKey: queue }
  return { ...route, content, options }
}

/** Publish options of a copy of a delivered message: its id and priority, with `headers`. */
function copyOptions(message: ConsumeMessage, headers: Options.Publish['headers']): Outgoing['options'] {
  const options: Outgoing['options'] = {
    persistent: true,
    mandatory: true,
    messageId: messageIdOf(message),
    headers,
  }
  if (typeof message.properties.priority === 'number' && message.properties.priority > 0) {
    options.priority = message.properties.priority
  }
  return options
}

/** Write every item (respecting the socket's backpressure), then collect the confirms. */
function publishOn(ch: ConfirmChannel, state: ChannelState, items: readonly Outgoing[]): Promise<Outcome> {
  return new Promise((resolve) => {
    const lost: Outgoing[] = []
    let nacked = 0
    let returned = 0
    let left = items.length
    let next = 0
    const settle = () => {
      if (--left === 0) resolve({ lost, nacked, returned })
    }
    const failRest = () => {
      while (next < items.length) {
        lost.push(items[next++]!)
        settle()
      }
    }
    const pump = () => {
      while (next < items.length) {
        const item = items[next++]!
        let flowing: boolean
        try {
          flowing = ch.publish(item.exchange, item.routingKey, item.content, item.options, (err: unknown) => {
            if (err === null || err === undefined) {
              if (takeReturned(state, item.options.messageId)) returned++
            } else if ((err as Error).message === 'message nacked') nacked++
            else lost.push(item)
            settle()
          })
        } catch {
          // The channel closed between two writes.
          lost.push(item)
          settle()
          failRest()
          return
        }
        if (!flowing && next < items.length) {
          const onDrain = () => {
            ch.off('close', onClose)
            pump()
          }
          const onClose = () => {
            ch.off('drain', onDrain)
            failRest()
          }
          ch.once('drain', onDrain)
          ch.once('close', onClose)
          return
        }
      }
    }
    pump()
  })
}
