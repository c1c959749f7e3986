import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'

/** The Redis under test: `REDIS_URL`, else the local server. */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

/** A key prefix no other test (or engineer) uses. */
export function uniquePrefix(label = 'test'): string {
  return `errand-${label}-${process.pid}-${randomBytes(4).toString('hex')}`
}

/** Checks Redis answers; under CI a missing server fails the run instead of skipping. */
export async function redisAvailable(): Promise<boolean> {
  const client = new Redis(REDIS_URL, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  })
  client.on('error', () => {})
  try {
    await client.connect()
    await client.ping()
    return true
  } catch (err) {
    if (process.env.CI === 'true')
      throw new Error(`Redis is not reachable at ${REDIS_URL} (CI=true)`, { cause: err })
    return false
  } finally {
    client.disconnect()
  }
}

/** Deletes every key under `prefix` (only ours: never a global wipe). */
export async function deletePrefix(prefix: string): Promise<void> {
  const client = new Redis(REDIS_URL)
  try {
    let cursor = '0'
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) await client.del(...keys)
    } while (cursor !== '0')
  } finally {
    client.disconnect()
  }
}

/** Resolves when `predicate` holds, checking on every event-loop turn (no fixed sleeps). */
export async function until(predicate: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const start = Date.now()
  while (!predicate()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

export const text = (s: string): Uint8Array => new TextEncoder().encode(s)
export const str = (b: Uint8Array): string => new TextDecoder().decode(b)
