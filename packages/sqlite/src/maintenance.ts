import { statSync } from 'node:fs'
import type { SqliteConnection } from './connection.js'
import { MEMORY_PATH } from './options.js'

/** Sizes of the database, in bytes. */
export interface DatabaseSize {
  /** The main file (0 for the in-memory database). */
  readonly file: number
  /** The `-wal` file beside it. */
  readonly wal: number
  /** Pages on the free list: space inside the file that SQLite will reuse or `maintain()` gives back. */
  readonly free: number
}

function fileSize(path: string): number {
  try {
    return statSync(path).size
  } catch {
    return 0
  }
}

/** Sizes of the file, its WAL and its free pages. */
export function databaseSize(connection: SqliteConnection): DatabaseSize {
  const { db, path } = connection
  const pageSize = db.pragma('page_size', { simple: true }) as number
  const freePages = db.pragma('freelist_count', { simple: true }) as number
  if (path === MEMORY_PATH) return { file: 0, wal: 0, free: freePages * pageSize }
  return { file: fileSize(path), wal: fileSize(`${path}-wal`), free: freePages * pageSize }
}

/**
 * Gives free pages back to the file system and empties the WAL: `PRAGMA incremental_vacuum`
 * (the file is created with incremental auto-vacuum), then `PRAGMA wal_checkpoint(TRUNCATE)`.
 * `full: true` runs `VACUUM` instead of the incremental step: it rewrites the whole file (needed
 * once for a file made without auto-vacuum; holds the lock for as long as the copy takes).
 */
export async function maintain(
  connection: SqliteConnection,
  busyTimeoutMs: number,
  options: { full?: boolean } = {},
): Promise<{ before: DatabaseSize; after: DatabaseSize }> {
  const before = databaseSize(connection)
  const { db } = connection
  if (options.full) {
    await connection.retrying(() => db.exec('VACUUM'), busyTimeoutMs)
  } else {
    // incremental_vacuum frees pages only while its statement is stepped to the end.
    await connection.write(() => db.pragma('incremental_vacuum'), busyTimeoutMs)
  }
  if (connection.path !== MEMORY_PATH) {
    await connection.retrying(() => db.pragma('wal_checkpoint(TRUNCATE)'), busyTimeoutMs)
  }
  return { before, after: databaseSize(connection) }
}
