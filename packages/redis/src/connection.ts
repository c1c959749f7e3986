import { ClosedError, ConnectionError, ErrandError, maskCredentials } from '@errand/core'
import { Cluster, Redis } from 'ioredis'
import type { ConnectionPlan, RedisClient } from './options.js'

const ADAPTER = 'redis'

/** Reconnect backoff of the connections we create: 50 ms growing to 1 s, forever. */
const retryStrategy = (times: number): number => Math.min(50 * times, 1000)

function autoPipelined(client: RedisClient): boolean {
  return client.options.enableAutoPipelining === true
}

/**
 * The connections of one broker or backend: a main client for commands (created from the URL,
 * or the caller's), plus duplicates for blocking waits and pub/sub. We close what we created and
 * never a client we were given.
 */
export class Connections {
  readonly main: RedisClient
  readonly cluster: boolean
  readonly #owned: boolean
  readonly #display: string
  readonly #duplicates = new Set<RedisClient>()
  #closed = false

  constructor(plan: ConnectionPlan) {
    this.#display = plan.display
    if (plan.kind === 'borrowed' && !autoPipelined(plan.client)) {
      this.main = plan.client
      this.#owned = false
    } else if (plan.kind === 'borrowed') {
      // ioredis 6's auto-pipelining drops the command name of Buffer-reply commands, which the
      // scripts need: use a duplicate of the given client without it (ours, closed by us).
      this.main =
        plan.client instanceof Cluster
          ? plan.client.duplicate(undefined, { lazyConnect: true, enableAutoPipelining: false })
          : plan.client.duplicate({ lazyConnect: true, enableAutoPipelining: false })
      this.#owned = true
      this.main.on('error', () => {})
    } else {
      this.main = new Redis({
        retryStrategy,
        ...plan.options,
        lazyConnect: true,
        enableAutoPipelining: false,
      })
      this.#owned = true
      this.main.on('error', () => {})
    }
    this.cluster = this.main instanceof Cluster
  }

  /** Connect the main client (ours) or check that the given one is usable. */
  async connect(): Promise<void> {
    this.assertOpen()
    if (this.main.status === 'ready') return
    if (!this.#owned) {
      if (this.main.status === 'end') {
        throw new ConnectionError('the given client is closed (status "end")', { adapter: ADAPTER })
      }
      return
    }
    if (this.main.status === 'wait' || this.main.status === 'end' || this.main.status === 'close') {
      try {
        await this.main.connect()
      } catch (cause) {
        this.main.disconnect()
        throw this.error(`could not connect to ${this.#display}`, cause)
      }
    }
  }

  /**
   * A new connection of our own for blocking commands or pub/sub. Offline commands wait for the
   * reconnect instead of failing after a number of retries: a blocking wait outlives outages.
   */
  duplicate(): RedisClient {
    this.assertOpen()
    let client: RedisClient
    if (this.main instanceof Cluster) {
      client = this.main.duplicate(undefined, { lazyConnect: true, enableAutoPipelining: false })
    } else {
      client = this.main.duplicate({
        lazyConnect: true,
        maxRetriesPerRequest: null,
        retryStrategy,
        enableAutoPipelining: false,
      })
    }
    client.on('error', () => {})
    this.#duplicates.add(client)
    return client
  }

  /** Close a duplicate at once (pending commands reject). */
  drop(client: RedisClient): void {
    if (this.#duplicates.delete(client)) client.disconnect()
  }

  /** Close the duplicates, and the main client when it is ours (after its pending replies). */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const client of this.#duplicates) client.disconnect()
    this.#duplicates.clear()
    if (this.#owned) {
      try {
        if (this.main.status === 'ready') await this.main.quit()
      } catch {
        // Already gone: nothing to flush.
      } finally {
        this.main.disconnect()
      }
    }
  }

  /** Throws `ERR_CLOSED` once closed. */
  assertOpen(): void {
    if (this.#closed) throw new ClosedError('closed', { adapter: ADAPTER })
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Wraps a client error as `ERR_CONNECTION` (or passes an ErrandError through). */
  error(what: string, cause: unknown): ErrandError {
    if (cause instanceof ErrandError) return cause
    if (this.#closed) return new ClosedError(`${what}: closed`, { adapter: ADAPTER, cause })
    const message = cause instanceof Error ? cause.message : String(cause)
    return new ConnectionError(`${what}: ${maskCredentials(message)}`, { adapter: ADAPTER, cause })
  }
}
