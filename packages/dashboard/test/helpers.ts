import { randomBytes } from 'node:crypto'
import type { App, SerializedError } from '@errand/core'
import { Redis } from 'ioredis'

/** A name no other test run uses. */
export const unique = (prefix: string): string => `${prefix}-${randomBytes(4).toString('hex')}`

/** Logger that keeps tests quiet. */
export const quiet = { debug() {}, info() {}, warn() {}, error() {} }

/** Poll `check` until it holds (bounded); for store state no event announces. */
export async function until(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/**
 * Put `body` in `queue`'s dead letters the way a worker does (a delivery dead-lettered with a
 * reason and error), without running a worker.
 */
export async function makeDeadLetter(
  app: App,
  queue: string,
  body: string | Uint8Array,
  error: SerializedError,
): Promise<void> {
  const { broker } = await app.connect()
  const before = (await broker.stats(queue)).dead
  await broker.publish(queue, [{ body: typeof body === 'string' ? new TextEncoder().encode(body) : body }])
  let settled!: () => void
  const done = new Promise<void>((resolve) => {
    settled = resolve
  })
  const consumer = await broker.consume(
    queue,
    (d) => {
      void d.deadLetter({ reason: 'rejected', error }).then(settled)
    },
    { prefetch: 1 },
  )
  await done
  await consumer.cancel()
  await until(async () => (await broker.stats(queue)).dead === before + 1, 'the dead letter')
}

/** A Redis key prefix for one test file, and the clean-up that deletes every key under it. */
export function redisPrefix(): { url: string; cleanup(): Promise<void> } {
  const base = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
  const prefix = unique('dash')
  const url = new URL(base)
  url.searchParams.set('keyPrefix', prefix)
  return {
    url: url.toString(),
    async cleanup() {
      const client = new Redis(base)
      try {
        let cursor = '0'
        do {
          const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
          cursor = next
          if (keys.length > 0) await client.del(...keys)
        } while (cursor !== '0')
      } finally {
        client.disconnect()
      }
    },
  }
}
