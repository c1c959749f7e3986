import type { TaskRecord } from '@errand/core'
import { DecodeError, isFinalState } from '@errand/core'
import { parseTaskRecord } from './codec.js'
import type { Connections } from './connection.js'
import type { RedisClient } from './options.js'

/** Gets each record seen for its id, or the error of a stored record that is not one. */
type Listener = (record: TaskRecord | DecodeError) => void

/** A stored record, read: garbage becomes an `ERR_DECODE` for the waiters (never a throw). */
function readRecord(id: string, json: string): TaskRecord | DecodeError {
  return (
    parseTaskRecord(json) ??
    new DecodeError(`the stored result of task "${id}" is not a task record`, { adapter: 'redis' })
  )
}

/**
 * `waitFor` by pub/sub: one subscriber connection per backend, one channel per awaited task
 * id (subscribed while at least one caller waits for it). A waiter subscribes first and reads
 * the record second, so a final write racing the call is seen by one or the other. After a
 * reconnect (the client re-subscribes by itself) every awaited record is read again, in case
 * its final write happened while the connection was down.
 */
export class FinalWaiters {
  readonly #conns: Connections
  readonly #channel: (id: string) => string
  readonly #read: (id: string) => Promise<string | null>
  readonly #listeners = new Map<string, Set<Listener>>()
  readonly #ids = new Map<string, string>()
  /** Channels whose SUBSCRIBE is on its way. */
  readonly #subscribing = new Map<string, Promise<void>>()
  readonly #rejects = new Set<(err: unknown) => void>()
  readonly #aborts = new WeakMap<AbortSignal, { callbacks: Set<() => void>; handler: () => void }>()
  #sub: RedisClient | undefined

  constructor(
    conns: Connections,
    channel: (id: string) => string,
    read: (id: string) => Promise<string | null>,
  ) {
    this.#conns = conns
    this.#channel = channel
    this.#read = read
  }

  /** Resolves with the record once final; rejects with the signal's reason on abort. */
  wait(id: string, signal: AbortSignal | undefined): Promise<TaskRecord> {
    return new Promise<TaskRecord>((resolve, reject) => {
      signal?.throwIfAborted()
      const channel = this.#channel(id)
      let done = false
      const finish = (err: unknown, record?: TaskRecord) => {
        if (done) return
        done = true
        stopAbort()
        this.#rejects.delete(fail)
        this.#unlisten(channel, listener)
        if (record !== undefined) resolve(record)
        else reject(err)
      }
      const fail = (err: unknown) => finish(err)
      const listener: Listener = (record) => {
        if (record instanceof DecodeError) finish(record)
        else if (isFinalState(record.state)) finish(undefined, record)
      }
      const stopAbort = signal === undefined ? () => {} : this.#onAbort(signal, () => finish(signal.reason))
      this.#rejects.add(fail)
      this.#listen(channel, id, listener)
        .then(() => (done ? null : this.#read(id)))
        .then(
          (json) => {
            if (json !== null) listener(readRecord(id, json))
          },
          (err) => finish(this.#conns.error(`waitFor "${id}"`, err)),
        )
    })
  }

  /** Reject every pending wait with `err` and drop the subscriber connection. */
  close(err: Error): void {
    for (const reject of [...this.#rejects]) reject(err)
    if (this.#sub !== undefined) this.#conns.drop(this.#sub)
    this.#sub = undefined
  }

  /**
   * One 'abort' listener per signal however many waits share it (a caller may wait for a whole
   * group with one signal). Returns the unregister function.
   */
  #onAbort(signal: AbortSignal, callback: () => void): () => void {
    let entry = this.#aborts.get(signal)
    if (entry === undefined) {
      const callbacks = new Set<() => void>()
      const handler = () => {
        for (const cb of [...callbacks]) cb()
      }
      signal.addEventListener('abort', handler, { once: true })
      entry = { callbacks, handler }
      this.#aborts.set(signal, entry)
    }
    const { callbacks, handler } = entry
    callbacks.add(callback)
    return () => {
      callbacks.delete(callback)
      if (callbacks.size === 0) {
        signal.removeEventListener('abort', handler)
        this.#aborts.delete(signal)
      }
    }
  }

  async #listen(channel: string, id: string, listener: Listener): Promise<void> {
    const set = this.#listeners.get(channel)
    if (set !== undefined) {
      set.add(listener)
      // Wait for the channel's SUBSCRIBE too: a waiter that read the record before the first
      // waiter's subscription was live could miss the final write's message for good.
      await this.#subscribing.get(channel)
      return
    }
    this.#listeners.set(channel, new Set([listener]))
    this.#ids.set(channel, id)
    const subscribed = this.#subscriber()
      .subscribe(channel)
      .then(() => undefined)
    this.#subscribing.set(channel, subscribed)
    try {
      await subscribed
    } finally {
      if (this.#subscribing.get(channel) === subscribed) this.#subscribing.delete(channel)
    }
  }

  #unlisten(channel: string, listener: Listener): void {
    const set = this.#listeners.get(channel)
    if (set === undefined) return
    set.delete(listener)
    if (set.size > 0) return
    this.#listeners.delete(channel)
    this.#ids.delete(channel)
    this.#sub?.unsubscribe(channel).catch(() => {})
  }

  #subscriber(): RedisClient {
    if (this.#sub !== undefined) return this.#sub
    const sub = this.#conns.duplicate()
    sub.on('message', (channel: string, json: string) => {
      const set = this.#listeners.get(channel)
      if (set === undefined) return
      // This runs inside the client's event handler: a throw here would crash the process.
      const record = parseTaskRecord(json)
      if (record === undefined) {
        // Not published by a backend (anyone can PUBLISH): the stored record still decides.
        this.#conns.logger.warn(`[redis] ignored a message on ${channel} that is not a task record`)
        return
      }
      for (const listener of [...set]) listener(record)
    })
    let connectedOnce = false
    sub.on('ready', () => {
      if (!connectedOnce) {
        connectedOnce = true
        return
      }
      // Reconnected: a final write may have happened while we were away.
      for (const [channel, id] of this.#ids) {
        this.#read(id).then(
          (json) => {
            if (json === null) return
            const set = this.#listeners.get(channel)
            if (set !== undefined) for (const listener of [...set]) listener(readRecord(id, json))
          },
          () => {},
        )
      }
    })
    this.#sub = sub
    return sub
  }
}
