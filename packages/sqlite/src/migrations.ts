import type Database from 'better-sqlite3'

/**
 * Schema versions, applied in order. The version lives in SQLite's own `PRAGMA user_version`, so
 * it is read and bumped in the same transaction as the tables it describes.
 *
 * Every table is prefixed `errand_`, so the file can be shared with an application's own tables.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: jobs, dead letters, results, groups, claims.
  `
  -- run_at is when the row can next be taken: its due time while waiting, its lease expiry while
  -- held (leased = 1). So an expired lease needs no sweep: the row is simply due again.
  -- AUTOINCREMENT: ids are never reused, so (id, deliveries) fences a stale holder for good.
  CREATE TABLE errand_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    run_at INTEGER NOT NULL,
    leased INTEGER NOT NULL DEFAULT 0,
    deliveries INTEGER NOT NULL DEFAULT 0,
    body BLOB NOT NULL
  );
  -- One probe per priority level, run_at as a range: delayed rows are never scanned.
  CREATE INDEX errand_jobs_fetch ON errand_jobs (queue, priority, run_at, id);

  CREATE TABLE errand_dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    reason TEXT NOT NULL,
    error TEXT,
    body BLOB NOT NULL,
    dead_at INTEGER NOT NULL
  );
  CREATE INDEX errand_dead_letters_queue ON errand_dead_letters (queue, id);

  CREATE TABLE errand_results (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    record TEXT NOT NULL,
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX errand_results_expiry ON errand_results (expires_at);

  CREATE TABLE errand_groups (
    id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    completed INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX errand_groups_expiry ON errand_groups (expires_at);

  CREATE TABLE errand_group_members (
    group_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    PRIMARY KEY (group_id, idx)
  ) WITHOUT ROWID;

  CREATE TABLE errand_kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX errand_kv_expiry ON errand_kv (expires_at);
  `,
  // 2: task events (the events capability).
  `
  -- AUTOINCREMENT: ids are never reused, even after every row was trimmed or deleted by hand, so
  -- a live reader in another process that remembers the last id it saw never skips a new row.
  -- Commits are serialised by the file lock, so ids also become visible in increasing order.
  CREATE TABLE errand_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body TEXT NOT NULL
  );
  -- recentEvents and the retention trim: the newest rows of one queue.
  CREATE INDEX errand_events_queue ON errand_events (queue, id);
  `,
  // 3: flow control (rate limits, group concurrency slots, paused queues).
  `
  -- One row per recorded start. expires_at = at + the window of the call that recorded it, so
  -- the sweep can drop rows of keys nobody asks about any more.
  CREATE TABLE errand_rate (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX errand_rate_key ON errand_rate (key, at);
  CREATE INDEX errand_rate_expiry ON errand_rate (expires_at);

  -- One row per held slot; a row whose lease ran out is free (deleted by the next acquire of
  -- its key, or by the sweep).
  CREATE TABLE errand_slots (
    key TEXT NOT NULL,
    holder TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (key, holder)
  ) WITHOUT ROWID;
  CREATE INDEX errand_slots_expiry ON errand_slots (expires_at);

  CREATE TABLE errand_paused (
    queue TEXT PRIMARY KEY
  ) WITHOUT ROWID;
  `,
]

/** The schema version this package writes and reads. */
export const SCHEMA_VERSION = MIGRATIONS.length

/**
 * Applies pending migrations inside the caller's `BEGIN IMMEDIATE` transaction (which makes a
 * second process starting at the same moment wait, then find nothing left to do). Returns the
 * versions applied. Refuses a file written by a newer version of this package.
 */
export function applyMigrations(db: Database.Database): number[] {
  const current = db.pragma('user_version', { simple: true }) as number
  if (current > SCHEMA_VERSION) {
    throw new Error(
      `the database is at schema version ${current}, newer than this package's ${SCHEMA_VERSION}: upgrade @errand/sqlite`,
    )
  }
  const applied: number[] = []
  for (let version = current + 1; version <= SCHEMA_VERSION; version++) {
    db.exec(MIGRATIONS[version - 1]!)
    applied.push(version)
  }
  if (applied.length > 0) db.pragma(`user_version = ${SCHEMA_VERSION}`)
  return applied
}
