import type { Pool } from 'mysql2/promise'

/**
 * The two tables, created if missing. One row per message; `visible_at` is when a consumer may
 * take it (its `run_at` while waiting, its lease's end while held), so an expired lease needs no
 * sweeper: the row is simply visible again. `deliveries` counts takes and fences stale holders.
 * The fetch index orders by priority then id, so `LIMIT n … SKIP LOCKED` stops after n rows
 * instead of sorting (and locking) every due row of the queue.
 */
export async function migrate(pool: Pool, table: string): Promise<void> {
  await pool.query(`CREATE TABLE IF NOT EXISTS \`${table}_jobs\` (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    queue VARCHAR(191) NOT NULL,
    priority TINYINT UNSIGNED NOT NULL DEFAULT 0,
    visible_at BIGINT NOT NULL,
    held TINYINT(1) NOT NULL DEFAULT 0,
    deliveries INT UNSIGNED NOT NULL DEFAULT 0,
    body LONGBLOB NOT NULL,
    KEY fetch_order (queue, priority DESC, id),
    KEY due (queue, visible_at)
  ) ENGINE=InnoDB`)
  await pool.query(`CREATE TABLE IF NOT EXISTS \`${table}_dead\` (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    queue VARCHAR(191) NOT NULL,
    reason VARCHAR(32) NOT NULL,
    error LONGTEXT NULL,
    dead_at BIGINT NOT NULL,
    body LONGBLOB NOT NULL,
    KEY by_queue (queue, id)
  ) ENGINE=InnoDB`)
}
