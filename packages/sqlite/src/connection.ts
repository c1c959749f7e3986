import { ConnectionError } from '@errand/core'
import Database from 'better-sqlite3'
import { ChangeFeed } from './change-feed.js'
import { applyMigrations } from './migrations.js'
import { ADAPTER, MEMORY_PATH } from './options.js'

/**
 * Longest time one attempt to take the write lock blocks the event loop (SQLite's busy handler
 * sleeps inside the call). Past it the attempt gives up and is retried on a timer, so a process
 * waiting for another's lock keeps serving its other work.
 */
export const LOCK_SLICE_MS = 2

/** Synchronous level of one commit: `FULL` waits for an fsync, `NORMAL` does not (WAL). */
export type SyncLevel = 'FULL' | 'NORMAL'

/** The outcome of one {@link SqliteConnection.tryWrite} attempt. */
export type WriteAttempt<T> = { readonly busy: true } | { readonly busy: false; readonly value: T }

const BUSY: WriteAttempt<never> = Object.freeze({ busy: true })

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown }).code
  return code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_RECOVERY' || code === 'SQLITE_LOCKED'
}

function isSqliteError(err: unknown): boolean {
  return err instanceof Database.SqliteError
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

interface Entry {
  readonly opening: Promise<SqliteConnection>
  refs: number
}

/** Open connections of this process, by path: broker and backend on one file share one. */
const registry = new Map<string, Entry>()

/**
 * One better-sqlite3 connection to a file, shared by every broker and backend of this process
 * opened on that path (reference-counted; the in-memory database stays open for the life of the
 * process, like core's memory store). Sharing is safe because every transaction runs inside one
 * synchronous call: no two can interleave on the connection.
 *
 * Settings: WAL journal (readers never block the writer), `synchronous = NORMAL` except for
 * commits asked as `FULL`, incremental auto-vacuum (set before the first table, so `maintain()`
 * can give free pages back), a 64 MiB cap on the WAL file kept after a checkpoint, and a busy
 * timeout of {@link LOCK_SLICE_MS} per attempt.
 */
export class SqliteConnection {
  readonly path: string
  readonly db: Database.Database
  readonly feed: ChangeFeed
  readonly #statements = new Map<string, Database.Statement>()
  #sync: SyncLevel = 'NORMAL'
  #closed = false

  private constructor(path: string, db: Database.Database) {
    this.path = path
    this.db = db
    const version = path === MEMORY_PATH ? undefined : db.prepare('PRAGMA data_version').pluck()
    this.feed = new ChangeFeed(version === undefined ? undefined : () => version.get() as number)
  }

  /**
   * The shared connection to `path`, opened and migrated on first use. Rejects with
   * `ERR_CONNECTION` naming the path when the file cannot be opened, written or migrated.
   */
  static async acquire(path: string, busyTimeoutMs: number): Promise<SqliteConnection> {
    let entry = registry.get(path)
    if (entry === undefined) {
      const opening = SqliteConnection.#open(path, busyTimeoutMs)
      entry = { opening, refs: 0 }
      registry.set(path, entry)
      const current = entry
      opening.catch(() => {
        if (registry.get(path) === current) registry.delete(path)
      })
    }
    entry.refs++
    try {
      return await entry.opening
    } catch (err) {
      entry.refs--
      throw err
    }
  }

  /** Gives back one reference; the last one closes the file (never the in-memory database). */
  release(): void {
    const entry = registry.get(this.path)
    if (entry === undefined) return
    entry.refs--
    if (entry.refs > 0 || this.path === MEMORY_PATH) return
    registry.delete(this.path)
    this.#closed = true
    this.feed.stop()
    try {
      this.db.close()
    } catch {
      // Closing a connection that failed is not worth an error of its own.
    }
  }

  static async #open(path: string, busyTimeoutMs: number): Promise<SqliteConnection> {
    const deadline = Date.now() + busyTimeoutMs
    let db: Database.Database
    try {
      db = new Database(path, { timeout: LOCK_SLICE_MS })
    } catch (err) {
      throw openError(path, err)
    }
    try {
      // Every step is idempotent, and any of them can meet another process's exclusive moment
      // (its switch to WAL, its migration): on SQLITE_BUSY the whole setup is tried again.
      await retryBusy(() => setUp(db, path), deadline)
      return new SqliteConnection(path, db)
    } catch (err) {
      db.close()
      throw openError(path, err)
    }
  }

  /** True once the last reference was released. */
  get closed(): boolean {
    return this.#closed
  }

  /** A prepared statement, compiled once per connection. */
  statement(sql: string): Database.Statement {
    let statement = this.#statements.get(sql)
    if (statement === undefined) {
      statement = this.db.prepare(sql)
      this.#statements.set(sql, statement)
    }
    return statement
  }

  /**
   * One attempt at `fn` inside `BEGIN IMMEDIATE … COMMIT`, blocking at most
   * {@link LOCK_SLICE_MS} for the lock. `{ busy: true }` when another process held it; any other
   * failure rolls back and throws `ERR_CONNECTION` (a `TypeError` from `fn` is rethrown as is).
   */
  tryWrite<T>(fn: () => T, sync: SyncLevel = 'NORMAL'): WriteAttempt<T> {
    this.#setSync(sync)
    try {
      return { busy: false, value: this.db.transaction(fn).immediate() }
    } catch (err) {
      if (isBusy(err)) return BUSY
      throw this.wrap(err, 'write')
    }
  }

  /**
   * `fn` in a write transaction, waiting (on timers, not blocking) while other processes hold
   * the lock, up to `busyTimeoutMs`; then `ERR_CONNECTION`. `committed`, when given, runs
   * synchronously right after the commit, before anything else in this process can run (the
   * returned promise resolves a microtask later, which is too late for some bookkeeping).
   */
  async write<T>(
    fn: () => T,
    busyTimeoutMs: number,
    sync: SyncLevel = 'NORMAL',
    committed?: (value: T) => void,
  ): Promise<T> {
    const deadline = Date.now() + busyTimeoutMs
    for (let round = 0; ; round++) {
      const attempt = this.tryWrite(fn, sync)
      if (!attempt.busy) {
        committed?.(attempt.value)
        return attempt.value
      }
      if (Date.now() >= deadline) {
        throw new ConnectionError(
          `${this.path} stayed locked by another process for more than ${busyTimeoutMs} ms (busyTimeoutMs)`,
          { adapter: ADAPTER },
        )
      }
      await sleep(lockWait(round))
    }
  }

  /**
   * `fn` outside a transaction (for statements that cannot run in one, like `VACUUM`), retried
   * on timers while another process holds the lock, up to `busyTimeoutMs`.
   */
  async retrying<T>(fn: () => T, busyTimeoutMs: number): Promise<T> {
    try {
      return await retryBusy(fn, Date.now() + busyTimeoutMs)
    } catch (err) {
      throw this.wrap(err, 'maintenance')
    }
  }

  /** `fn` reading outside a transaction; SQLite errors become `ERR_CONNECTION`. */
  read<T>(fn: () => T): T {
    try {
      return fn()
    } catch (err) {
      throw this.wrap(err, 'read')
    }
  }

  /** A SQLite error as `ERR_CONNECTION` naming the file; anything else as it is. */
  wrap(err: unknown, what: string): unknown {
    if (!isSqliteError(err)) return err
    const e = err as Error & { code?: string }
    return new ConnectionError(`${what} on ${this.path} failed: ${e.code ?? 'SQLITE_ERROR'}: ${e.message}`, {
      adapter: ADAPTER,
      cause: err,
    })
  }

  #setSync(sync: SyncLevel): void {
    if (sync === this.#sync || this.path === MEMORY_PATH) return
    this.db.pragma(`synchronous = ${sync}`)
    this.#sync = sync
  }
}

/**
 * Pause before the next attempt at a lock another process of this machine holds: 1, 2, 4 ms… up
 * to 8 ms, with jitter. Not core's `reconnectDelay`: nothing is broken and there is nothing to
 * reconnect; the holder commits within milliseconds, and waiting its 100 ms → 5 s steps would
 * multiply every contended write's latency. The jitter keeps waiting processes out of step.
 */
export function lockWait(round: number): number {
  return Math.min(8, 2 ** round) * (0.5 + Math.random())
}

/** Pragmas and migrations of a freshly opened connection. */
function setUp(db: Database.Database, path: string): void {
  // Before the first table is created, or it has no effect (and is harmless after).
  db.pragma('auto_vacuum = INCREMENTAL')
  if (path !== MEMORY_PATH) {
    const mode = db.pragma('journal_mode = WAL', { simple: true })
    if (String(mode).toLowerCase() !== 'wal') {
      throw new Error(`could not switch the journal to WAL (it is "${String(mode)}")`)
    }
  }
  db.pragma('synchronous = NORMAL')
  db.pragma('journal_size_limit = 67108864')
  db.pragma('cache_size = -16384')
  db.transaction(() => applyMigrations(db)).immediate()
}

async function retryBusy<T>(fn: () => T, deadline: number): Promise<T> {
  for (let round = 0; ; round++) {
    try {
      return fn()
    } catch (err) {
      if (!isBusy(err) || Date.now() >= deadline) throw err
    }
    await sleep(lockWait(round))
  }
}

function openError(path: string, err: unknown): ConnectionError {
  const e = err as Error & { code?: string }
  const code = e.code ?? ''
  const hint =
    code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN') || code === 'SQLITE_PERM'
      ? ' (the file and its directory must be writable: SQLite creates <file>-wal and <file>-shm beside it)'
      : ''
  return new ConnectionError(`cannot open ${path}: ${code ? `${code}: ` : ''}${e.message}${hint}`, {
    adapter: ADAPTER,
    cause: err,
  })
}
