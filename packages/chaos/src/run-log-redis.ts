import { Redis } from 'ioredis'
import { formatRun, parseRun, type RunLog, type RunRecord } from './run-log.js'

/** A run log in one Redis list (RPUSH per run; read back with LRANGE). */
export async function openRedisRunLog(url: string, key: string): Promise<RunLog> {
  // No offline queue limit games: this connection is direct, and a failed write fails the run
  // (which then shows as a retry, not as a silent hole in the count).
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 3 })
  await client.connect()
  return {
    async record(run: RunRecord) {
      await client.rpush(key, formatRun(run))
    },
    async readAll() {
      const out: RunRecord[] = []
      const total = await client.llen(key)
      for (let start = 0; start < total; start += 5000) {
        for (const line of await client.lrange(key, start, start + 4999)) out.push(parseRun(line))
      }
      return out
    },
    async close() {
      await client.quit().catch(() => client.disconnect())
    },
  }
}
