import {
  ClosedError,
  ConnectionError,
  ErrandError,
  InvalidOptionError,
  type Logger,
  maskCredentials,
  reconnectDelay,
} from '@errand/core'
import { Cluster, Redis } from 'ioredis'
import type { ConnectionPlan, RedisClient } from './options.js'

const ADAPTER = 'redis'

/**
 * Reconnect waits of the connections we create: core's one reconnect backoff (100 ms doubling to
 * 5 s, jittered), forever. `redisOptions.retryStrategy` overrides it for connections from a URL.
 */
const retryStrategy = (times: number): number => reconnectDelay(times)

function autoPipelined(client: RedisClient): boolean {
  return client.options.enableAutoPipelining === true
}

/** The reply error of the SELECT ioredis sends on every (re)connect when a db is set. */
function isSelectFailure(err: unknown): err is Error {
  return (
    err instanceof Error && (err as { command?: { name?: unknown } }).command?.name?.toString() === 'select'
  )
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
  readonly #logger: Logger
  /** The option that chose the db, named when the server refuses it. */
  readonly #dbOption: string
  /** Set when the server refused SELECT during `connect()`. */
  #refusedDb: Error | undefined
  #connected = false
  #closed = false

  constructor(plan: ConnectionPlan, logger: Logger) {
    this.#display = plan.display
    this.#logger = logger
    this.#dbOption = plan.kind === 'owned' ? plan.dbOption : 'client'
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
      this.#guard(this.main)
    } else {
      this.main = new Redis({
        retryStrategy,
        ...plan.options,
        lazyConnect: true,
        enableAutoPipelining: false,
      })
      this.#owned = true
      this.#guard(this.main)
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
      this.#refusedDb = undefined
      try {
        await this.main.connect()
      } catch (cause) {
        this.main.disconnect()
        // Set by #guard while connect() was pending (TypeScript cannot see that).
        const refused = this.#refusedDb as Error | undefined
        if (refused !== undefined) {
          throw new InvalidOptionError(
            this.#dbOption,
            `${this.#display} refused to select db ${this.#db()}: ${maskCredentials(refused.message)}`,
            { adapter: ADAPTER, cause: refused },
          )
        }
        throw this.error(`could not connect to ${this.#display}`, cause)
      }
    }
    this.#connected = true
  }

  /**
   * Errors of a client we created: ioredis reports them as events and reconnects by itself, so
   * they are not ours to throw, except one. When the server refuses the SELECT of the configured
   * db, ioredis reports it and goes on as ready on db 0 (ioredis 6 `event_handler.js`, handshake
   * `select` with `errorHandler: silentEmit('error')`): every command would land in the wrong
   * database. We drop that connection before it is ready; ioredis retries (and refuses again)
   * with its backoff, so commands wait and fail with `ERR_CONNECTION` instead of using db 0.
   */
  #guard(client: RedisClient): void {
    client.on('error', (err: unknown) => {
      if (!isSelectFailure(err)) return
      if (!this.#connected) this.#refusedDb = err
      else
        this.#logger.error(
          `[redis] ${this.#display} refused to select db ${this.#db()} after a reconnect (${err.message}); ` +
            'not using the connection until it accepts',
        )
      client.disconnect(true)
    })
  }

  #db(): number {
    return (this.main.options as { db?: number }).db ?? 0
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
    this.#guard(client)
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

  /** The adapter's logger (the app's, credential-masked). */
  get logger(): Logger {
    return this.#logger
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
