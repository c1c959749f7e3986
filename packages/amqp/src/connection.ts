import {
  ClosedError,
  ConnectionError,
  ErrandError,
  type Logger,
  maskCredentials,
  type ReconnectBackoff,
  reconnectDelay,
} from '@errand/core'
import amqp, { type Channel, type ChannelModel, type ConfirmChannel } from 'amqplib'
import type { ConnectionPlan } from './options.js'

const ADAPTER = { adapter: 'amqp' } as const

/** What the connection needs to know from the broker options. */
export interface ConnectionSettings {
  readonly plan: ConnectionPlan
  readonly reconnectWaitMs: number
  /** Waits between reconnect attempts (core's `reconnectDelay`). */
  readonly reconnect: ReconnectBackoff
  readonly logger: Logger
}

/**
 * One live AMQP connection with its shared channels: a confirm channel for publishing and an
 * admin channel for declarations and counts, each re-created on demand if the server closed it.
 * A session never comes back to life: after a drop the manager opens a new one.
 */
export class Session {
  /** False once the connection closed. */
  alive = true
  readonly model: ChannelModel
  readonly generation: number
  readonly #logger: Logger
  #confirm: Promise<ConfirmChannel> | undefined
  #admin: Promise<Channel> | undefined

  constructor(model: ChannelModel, generation: number, logger: Logger) {
    this.model = model
    this.generation = generation
    this.#logger = logger
  }

  /** The shared publishing channel (confirm mode). */
  confirmChannel(): Promise<ConfirmChannel> {
    this.#confirm ??= this.#open(
      () => this.model.createConfirmChannel(),
      () => {
        this.#confirm = undefined
      },
    )
    return this.#confirm
  }

  /** The shared channel for declarations and counts. A refused declaration closes it. */
  adminChannel(): Promise<Channel> {
    this.#admin ??= this.#open(
      () => this.model.createChannel(),
      () => {
        this.#admin = undefined
      },
    )
    return this.#admin
  }

  /** A new channel the caller owns (consumers, dead-letter scans). Errors are the caller's. */
  async openChannel(confirm = false): Promise<Channel | ConfirmChannel> {
    const ch = confirm ? await this.model.createConfirmChannel() : await this.model.createChannel()
    ch.on('error', () => {})
    return ch
  }

  #open<C extends Channel>(create: () => Promise<C>, onClose: () => void): Promise<C> {
    const opening = create().then((ch) => {
      ch.on('error', (err: Error) => {
        // Refused declarations are reported to their caller; anything else is worth a line.
        const code = (err as { code?: unknown }).code
        if (code !== 406 && code !== 404)
          this.#logger.warn(`[amqp] shared channel closed by the server: ${err.message}`)
      })
      ch.on('close', onClose)
      return ch
    })
    opening.catch(onClose)
    return opening
  }
}

type SessionListener = (session: Session) => void

/**
 * Opens the connection, notices when it drops and reopens it with backoff, forever, until
 * `close()`. Callers get the live session from {@link session}, which waits (bounded) while a
 * reconnect is under way. Listeners hear of every new session after the first, to re-declare
 * topology and resume consumers.
 */
export class ConnectionManager {
  readonly #settings: ConnectionSettings
  #session: Session | undefined
  #generation = 0
  #closed = false
  #lostForGood: Error | undefined
  #waiters = new Set<{ resolve: (s: Session) => void; reject: (e: Error) => void }>()
  #listeners = new Set<SessionListener>()
  #reconnectTimer: NodeJS.Timeout | undefined
  #reconnecting = false

  constructor(settings: ConnectionSettings) {
    this.#settings = settings
  }

  /** The live session, if any, without waiting. */
  get current(): Session | undefined {
    return this.#session
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Open the first connection. Rejects with `ERR_CONNECTION` when RabbitMQ cannot be reached. */
  async connect(): Promise<void> {
    if (this.#session !== undefined) return
    const session = await this.#openSession()
    if (this.#closed) {
      await this.#closeModel(session.model)
      throw new ClosedError('the broker was closed while connecting', ADAPTER)
    }
    this.#install(session)
  }

  /**
   * The live session, waiting up to `reconnectWaitMs` for a reconnect. Rejects with
   * `ERR_CLOSED` after `close()`, `ERR_CONNECTION` when the wait runs out.
   */
  session(): Promise<Session> {
    if (this.#closed) return Promise.reject(new ClosedError('the broker is closed', ADAPTER))
    if (this.#session !== undefined) return Promise.resolve(this.#session)
    if (this.#lostForGood !== undefined) return Promise.reject(this.#lostForGood)
    return new Promise<Session>((resolve, reject) => {
      const waiter = {
        resolve: (s: Session) => {
          clearTimeout(timer)
          resolve(s)
        },
        reject: (e: Error) => {
          clearTimeout(timer)
          reject(e)
        },
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter)
        reject(
          new ConnectionError(
            `no connection to RabbitMQ (${this.#settings.plan.display}) within ${this.#settings.reconnectWaitMs} ms`,
            ADAPTER,
          ),
        )
      }, this.#settings.reconnectWaitMs)
      this.#waiters.add(waiter)
    })
  }

  /**
   * Wait before retry `attempt` (1-based) of a call whose channel or connection died under it:
   * the reconnect waits (`reconnect` option), never past `deadline` (ms since epoch).
   */
  retryPause(attempt: number, deadline: number): Promise<void> {
    const ms = Math.max(0, Math.min(reconnectDelay(attempt, this.#settings.reconnect), deadline - Date.now()))
    return new Promise((resolve) => setTimeout(resolve, ms))
  }

  /** Hear of every session opened after a drop. Returns an unsubscribe function. */
  onReconnect(listener: SessionListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** Stop reconnecting and close the connection (unless the caller owns it). */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#reconnectTimer)
    const closed = new ClosedError('the broker is closed', ADAPTER)
    for (const w of this.#waiters) w.reject(closed)
    this.#waiters.clear()
    const session = this.#session
    this.#session = undefined
    if (session !== undefined) {
      session.alive = false
      if (this.#settings.plan.kind !== 'borrowed') await this.#closeModel(session.model)
    }
  }

  async #openSession(): Promise<Session> {
    const plan = this.#settings.plan
    let model: ChannelModel
    try {
      model =
        plan.kind === 'url'
          ? await amqp.connect(plan.url, { timeout: 10_000, ...plan.socketOptions })
          : plan.kind === 'factory'
            ? await plan.open()
            : plan.model
    } catch (err) {
      throw new ConnectionError(
        `cannot connect to RabbitMQ at ${plan.display}: ${maskCredentials(String((err as Error)?.message ?? err))}`,
        { ...ADAPTER, cause: err },
      )
    }
    // An 'error' with no listener throws: until #install adds the logging one (and on a model
    // closed unused), a socket error must not crash the process. The 'close' after it is handled.
    model.on('error', () => {})
    return new Session(model, ++this.#generation, this.#settings.logger)
  }

  #install(session: Session): void {
    this.#session = session
    const model = session.model
    model.on('error', (err: Error) => {
      this.#settings.logger.warn(`[amqp] connection error: ${maskCredentials(err.message)}`)
    })
    model.on('blocked', (reason: string) => {
      this.#settings.logger.warn(`[amqp] RabbitMQ blocked publishing on this connection: ${reason}`)
    })
    model.on('close', (err?: Error) => this.#onClose(session, err))
    for (const w of this.#waiters) w.resolve(session)
    this.#waiters.clear()
  }

  #onClose(session: Session, err: Error | undefined): void {
    session.alive = false
    if (this.#session !== session) return
    this.#session = undefined
    if (this.#closed) return
    const why = err ? maskCredentials(err.message) : 'closed'
    if (this.#settings.plan.kind === 'borrowed') {
      this.#lostForGood = new ConnectionError(
        `the caller-owned connection closed (${why}); the adapter cannot reopen it`,
        ADAPTER,
      )
      for (const w of this.#waiters) w.reject(this.#lostForGood)
      this.#waiters.clear()
      this.#settings.logger.error(`[amqp] ${this.#lostForGood.message}`)
      return
    }
    this.#settings.logger.warn(`[amqp] connection lost (${why}); reconnecting`)
    this.#scheduleReconnect(1)
  }

  #scheduleReconnect(attempt: number): void {
    if (this.#closed || this.#reconnecting) return
    const delay = reconnectDelay(attempt, this.#settings.reconnect)
    this.#reconnectTimer = setTimeout(() => void this.#reconnect(attempt), delay)
  }

  async #reconnect(attempt: number): Promise<void> {
    if (this.#closed) return
    this.#reconnecting = true
    let session: Session
    try {
      session = await this.#openSession()
    } catch (err) {
      this.#reconnecting = false
      if (attempt === 1 || attempt % 10 === 0) {
        this.#settings.logger.warn(`[amqp] reconnect attempt ${attempt} failed: ${(err as Error).message}`)
      }
      this.#scheduleReconnect(attempt + 1)
      return
    }
    this.#reconnecting = false
    if (this.#closed) {
      await this.#closeModel(session.model)
      return
    }
    this.#settings.logger.info(
      `[amqp] reconnected to ${this.#settings.plan.display} after ${attempt} attempt(s)`,
    )
    this.#install(session)
    for (const listener of this.#listeners) {
      try {
        listener(session)
      } catch (err) {
        this.#settings.logger.error(`[amqp] reconnect listener failed: ${(err as Error).message}`)
      }
    }
  }

  async #closeModel(model: ChannelModel): Promise<void> {
    try {
      await model.close()
    } catch {
      // Already closed: nothing to release.
    }
  }
}

/** An error RabbitMQ answered with (it closes the channel): 404 NOT_FOUND, 406 PRECONDITION_FAILED… */
export function serverCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | undefined)?.code
  return typeof code === 'number' && code >= 300 ? code : undefined
}

/** An amqplib failure as `ERR_CONNECTION`, keeping the cause. */
export function wrap(err: unknown, what: string): Error {
  if (err instanceof ErrandError) return err
  return new ConnectionError(`${what}: ${String((err as Error)?.message ?? err)}`, { ...ADAPTER, cause: err })
}

/** The close under way of each channel {@link closeQuietly} was called on. */
const closing = new WeakMap<Channel, Promise<void>>()

/**
 * Close `ch` with the AMQP handshake and resolve once it is closed, never rejecting. The handshake
 * matters: frames sent before (acks) are applied by the server before it answers `close-ok`,
 * whereas closing the connection right away may overtake them (amqplib writes each channel's
 * frames through its own buffer, interleaved) and RabbitMQ then requeues what was acked.
 *
 * Every call for the same channel shares the first one's promise: amqplib refuses a second
 * `close()` at once ("Channel closing") without waiting for the first to finish, which would let
 * a caller close the connection under a handshake still in progress. The promise also resolves
 * when the channel ends without `close-ok` (the connection dropped), where amqplib never settles
 * its own.
 */
export function closeQuietly(ch: Channel): Promise<void> {
  let done = closing.get(ch)
  if (done === undefined) {
    done = new Promise<void>((resolve) => {
      ch.once('close', () => resolve())
      // Fails when already closed (by the server or with the connection): nothing to release.
      try {
        ch.close().then(
          () => resolve(),
          () => resolve(),
        )
      } catch {
        resolve()
      }
    })
    closing.set(ch, done)
  }
  return done
}
