import { ClosedError, ConnectionError } from '@errand/core'
import type { ConfirmChannel, Message, Options } from 'amqplib'
import type { ConnectionManager } from './connection.js'
import { serverCode, wrap } from './topology.js'

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
 * Publishes on the shared confirm channel: writes a whole batch, then waits for RabbitMQ's
 * confirms (one callback per message, no round trip per message). Persistent messages on
 * durable queues: a confirm means the message is on disk (or on a quorum majority). Messages
 * unconfirmed when the channel or connection dropped are sent again once a new one is up
 * (within `reconnectWaitMs`), so a publish never vanishes; it may arrive twice.
 */
export class Publisher {
  readonly #conn: ConnectionManager
  readonly #waitMs: number

  constructor(conn: ConnectionManager, reconnectWaitMs: number) {
    this.#conn = conn
    this.#waitMs = reconnectWaitMs
  }

  /** Resolves when RabbitMQ confirmed every message. */
  async send(items: readonly Outgoing[]): Promise<void> {
    if (items.length === 0) return
    const deadline = Date.now() + this.#waitMs
    let pending = items
    for (;;) {
      const session = this.#conn.current ?? (await this.#conn.session())
      let ch: ConfirmChannel
      try {
        ch = await session.confirmChannel()
      } catch (err) {
        if (this.#conn.closed)
          throw new ClosedError('the broker closed before the publish was confirmed', ADAPTER)
        if (Date.now() >= deadline) throw wrap(err, 'cannot open a publishing channel')
        await pause()
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
      await pause()
    }
  }
}

function pause(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 20))
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
