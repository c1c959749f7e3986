import type { TaskRecord } from '@errand/core'
import { DecodeError, isFinalState, reconnectDelay, WaitRegistry } from '@errand/core'
import { parseTaskRecord } from './codec.js'
import type { Connections } from './connection.js'
import type { RedisClient } from './options.js'

/** A stored record, read: garbage becomes an `ERR_DECODE` for the waiters (never a throw). */
function readRecord(id: string, json: string): TaskRecord | DecodeError {
  return (
    parseTaskRecord(json) ??
    new DecodeError(`the stored result of task "${id}" is not a task record`, { adapter: 'redis' })
  )
}

/**
 * `waitFor` by pub/sub (the waiter bookkeeping is core's `WaitRegistry`): one subscriber
 * connection per backend, one channel per awaited task id (subscribed while at least one caller
 * waits for it). A waiter reads the record once the channel's SUBSCRIBE is live, so a final write
 * racing the call is seen by one or the other. After a reconnect (the client re-subscribes by
 * itself) every awaited channel is subscribed again and every awaited record read again, in case its
 * final write happened while the connection was down; a round that fails is retried.
 *
 * A safety poll backs all of that: while anyone waits, every awaited record is read again every
 * `pollMs` (the backend's `waitPollMs`, default 10 s). A notification lost for any reason (a publish that reached a
 * subscriber connection in the instant it was cut) then costs at most one interval, never a
 * wait that runs to its timeout although the result is stored.
 */
export class FinalWaiters {
  readonly #conns: Connections
  readonly #channel: (id: string) => string
  readonly #read: (id: string) => Promise<string | null>
  readonly #registry = new WaitRegistry<TaskRecord>({
    watch: (id) => this.#watch(id),
    unwatch: (id) => this.#unwatch(id),
  })
  /** Awaited id → its SUBSCRIBE (a read waits for it: before, a final write could be missed). */
  readonly #subscribed = new Map<string, Promise<void>>()
  /** Channel → awaited id. */
  readonly #ids = new Map<string, string>()
  #sub: RedisClient | undefined
  readonly #pollMs: number
  #poll: NodeJS.Timeout | undefined

  constructor(
    conns: Connections,
    channel: (id: string) => string,
    read: (id: string) => Promise<string | null>,
    pollMs: number,
  ) {
    this.#conns = conns
    this.#channel = channel
    this.#read = read
    this.#pollMs = pollMs
  }

  /** Resolves with the record once final; rejects with the signal's reason on abort. */
  wait(id: string, signal: AbortSignal | undefined): Promise<TaskRecord> {
    const waiting = this.#registry.wait(id, signal)
    const subscribed = this.#subscribed.get(id)
    // Still the same watch: a failure must not reach waiters of a later subscription of the id.
    const current = () => this.#subscribed.get(id) === subscribed
    subscribed
      ?.then(() => (current() ? this.#read(id) : null))
      .then(
        (json) => {
          if (json !== null) this.#seen(id, readRecord(id, json))
        },
        (err) => {
          if (current()) this.#registry.reject(id, this.#conns.error(`waitFor "${id}"`, err))
        },
      )
    return waiting
  }

  /** Reject every pending wait with `err` and drop the subscriber connection. */
  close(err: Error): void {
    clearInterval(this.#poll)
    this.#poll = undefined
    this.#registry.closeAll(err)
    if (this.#sub !== undefined) this.#conns.drop(this.#sub)
    this.#sub = undefined
  }

  /** A record of `id` was read or published: final settles its waiters, garbage fails them. */
  #seen(id: string, record: TaskRecord | DecodeError): void {
    if (record instanceof DecodeError) this.#registry.reject(id, record)
    else if (isFinalState(record.state)) this.#registry.resolve(id, record)
  }

  #watch(id: string): void {
    if (this.#poll === undefined) {
      this.#poll = setInterval(() => this.#safetyPoll(), this.#pollMs)
      this.#poll.unref()
    }
    const channel = this.#channel(id)
    this.#ids.set(channel, id)
    const subscribed = this.#subscriber()
      .subscribe(channel)
      .then(() => undefined)
    // Each waiter handles the failure (its wait rejects); this copy must not be unhandled.
    subscribed.catch(() => {})
    this.#subscribed.set(id, subscribed)
  }

  #unwatch(id: string): void {
    const channel = this.#channel(id)
    this.#subscribed.delete(id)
    if (this.#registry.size === 0) {
      clearInterval(this.#poll)
      this.#poll = undefined
    }
    this.#ids.delete(channel)
    this.#sub?.unsubscribe(channel).catch(() => {})
  }

  /**
   * After a reconnect: make sure every awaited channel is subscribed again (our own SUBSCRIBE,
   * answered once they are live; the client re-subscribes too, and a second SUBSCRIBE of a
   * channel changes nothing), then read every awaited record, so a final write is seen by the
   * read or published to us. The other connections may still be down (a cut takes them all):
   * a failed round is tried again after `reconnectDelay` until it succeeds or nobody waits.
   */
  async #recheck(sub: RedisClient, attempt: number): Promise<void> {
    const ids = [...this.#registry.ids()]
    if (ids.length === 0 || this.#sub !== sub) return
    try {
      await sub.subscribe(...ids.map((id) => this.#channel(id)))
      // A channel whose last waiter left meanwhile may stay subscribed: its messages are ignored
      // (not unsubscribed here, which could undo a new waiter's SUBSCRIBE of the same channel).
      await Promise.all(ids.map((id) => this.#reread(id)))
    } catch {
      if (this.#sub !== sub) return
      setTimeout(() => void this.#recheck(sub, attempt + 1), reconnectDelay(attempt)).unref()
    }
  }

  /** Read every awaited record once; errors are left to the next round (a wait has its timeout). */
  #safetyPoll(): void {
    for (const id of this.#registry.ids()) this.#reread(id).catch(() => {})
  }

  /** Read `id`'s record again and settle its waiters if it is final (or garbage). */
  async #reread(id: string): Promise<void> {
    const json = await this.#read(id)
    if (json !== null && this.#registry.has(id)) this.#seen(id, readRecord(id, json))
  }

  #subscriber(): RedisClient {
    if (this.#sub !== undefined) return this.#sub
    const sub = this.#conns.duplicate()
    sub.on('message', (channel: string, json: string) => {
      const id = this.#ids.get(channel)
      if (id === undefined) return
      // This runs inside the client's event handler: a throw here would crash the process.
      const record = parseTaskRecord(json)
      if (record === undefined) {
        // Not published by a backend (anyone can PUBLISH): the stored record still decides.
        this.#conns.logger.warn(`[redis] ignored a message on ${channel} that is not a task record`)
        return
      }
      this.#seen(id, record)
    })
    let connectedOnce = false
    sub.on('ready', () => {
      if (!connectedOnce) {
        connectedOnce = true
        return
      }
      // Reconnected: a final write may have happened while we were away.
      void this.#recheck(sub, 1)
    })
    this.#sub = sub
    return sub
  }
}
