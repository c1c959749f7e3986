import { reconnectDelay } from '@errand/core'
import { type Db, PG_RECONNECT } from './connection.js'
import type { PgNotification, PgPoolClient } from './pg-types.js'

/**
 * Called with the payload of a notification on the channel, or with `undefined` after the
 * connection was re-established (notifications may have been missed meanwhile: re-check).
 */
export type ChannelHandler = (payload: string | undefined) => void

/**
 * One dedicated connection that LISTENs on any number of channels for a broker or backend. It
 * re-establishes itself after a server restart (with backoff, until closed), LISTENs again on
 * every channel, and tells every handler to re-check, so nothing waits on a lost notification.
 */
export class Listener {
  private readonly db: Db
  private readonly handlers = new Map<string, Set<ChannelHandler>>()
  private readonly listening = new Set<string>()
  private client: PgPoolClient | undefined
  /** Detaches our event handlers from the current client without releasing it. */
  private detach: (() => void) | undefined
  private reconnecting: Promise<void> | undefined
  private closed = false
  /** Ends the reconnect loop's pause early, so close() does not wait it out. */
  private wake: (() => void) | undefined

  constructor(db: Db) {
    this.db = db
  }

  /** Connects once (retrying until the reconnect timeout), then keeps the connection up. */
  async start(): Promise<void> {
    await this.adopt(await this.db.connectDedicated())
  }

  /** Adds a handler; resolves once the channel is LISTENed on (or a reconnect is under way). */
  async listen(channel: string, handler: ChannelHandler): Promise<void> {
    let set = this.handlers.get(channel)
    if (!set) {
      set = new Set()
      this.handlers.set(channel, set)
    }
    set.add(handler)
    const client = this.client
    if (client !== undefined && !this.listening.has(channel)) {
      this.listening.add(channel)
      try {
        await client.query({ text: `LISTEN "${channel}"` })
      } catch {
        // The connection is going away; the reconnect LISTENs again and calls every handler.
        this.listening.delete(channel)
      }
    }
  }

  /** Allows {@link start} again after a failed start was cleaned up with {@link close}. */
  reopen(): void {
    this.closed = false
  }

  /** Removes a handler; UNLISTENs when the channel has none left. */
  async unlisten(channel: string, handler: ChannelHandler): Promise<void> {
    const set = this.handlers.get(channel)
    if (!set) return
    set.delete(handler)
    if (set.size > 0) return
    this.handlers.delete(channel)
    if (this.client !== undefined && this.listening.delete(channel)) {
      await this.client.query({ text: `UNLISTEN "${channel}"` }).catch(() => undefined)
    }
  }

  /** True while the LISTEN connection is up. */
  get connected(): boolean {
    return this.client !== undefined
  }

  async close(): Promise<void> {
    this.closed = true
    this.wake?.()
    const client = this.client
    this.client = undefined
    this.listening.clear()
    if (client) {
      this.detach?.()
      // A connection that fails later must not crash the process: keep a no-op error listener.
      client.on('error', () => undefined)
      client.release()
    }
    await this.reconnecting?.catch(() => undefined)
  }

  private readonly onNotification = (message: PgNotification): void => {
    const set = this.handlers.get(message.channel)
    if (!set) return
    for (const handler of set) handler(message.payload)
  }

  private async adopt(client: PgPoolClient): Promise<void> {
    let lost = false
    const onError = (err: Error): void => onLost(err)
    const onEnd = (): void => onLost()
    const detach = (): void => {
      lost = true
      client.removeListener('notification', this.onNotification)
      client.removeListener('error', onError)
      client.removeListener('end', onEnd)
    }
    const onLost = (err?: Error): void => {
      if (lost) return
      detach()
      client.on('error', () => undefined)
      if (this.client === client) {
        this.client = undefined
        this.listening.clear()
      }
      client.release(err ?? new Error('LISTEN connection ended'))
      if (!this.closed) {
        this.db.logger.warn(`LISTEN connection lost (${err?.message ?? 'ended'}); reconnecting`)
        this.reconnecting ??= this.reconnect().finally(() => {
          this.reconnecting = undefined
        })
      }
    }
    client.on('error', onError)
    client.on('end', onEnd)
    client.on('notification', this.onNotification)
    try {
      // Channels can be added while we LISTEN; loop until every one is covered.
      for (;;) {
        const missing = [...this.handlers.keys()].filter((c) => !this.listening.has(c))
        if (missing.length === 0) break
        for (const channel of missing) {
          await client.query({ text: `LISTEN "${channel}"` })
          this.listening.add(channel)
        }
      }
    } catch (err) {
      this.listening.clear()
      onLost(err as Error)
      throw err
    }
    if (this.closed) {
      detach()
      client.on('error', () => undefined)
      client.release()
      return
    }
    this.client = client
    this.detach = detach
  }

  private async reconnect(): Promise<void> {
    for (let attempt = 1; !this.closed; attempt++) {
      try {
        const client = await this.db.dedicatedClient()
        await this.adopt(client)
        // Anything published while we were away raised no notification here: re-check all.
        for (const set of this.handlers.values()) for (const handler of set) handler(undefined)
        return
      } catch {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, reconnectDelay(attempt, PG_RECONNECT))
          this.wake = () => {
            clearTimeout(timer)
            resolve()
          }
        })
        this.wake = undefined
      }
    }
  }
}
