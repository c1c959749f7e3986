import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import pg from 'pg'

/** A store the CLI tests run against, isolated by a key prefix (Redis) or a schema (Postgres). */
export interface TestStore {
  readonly name: string
  /** Broker and backend URL (one store for both). */
  readonly url: string
  /** Remove everything this run wrote. */
  cleanup(): Promise<void>
}

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

export function redisStore(): TestStore {
  const prefix = `cli-${randomBytes(4).toString('hex')}`
  const url = new URL(REDIS_URL)
  url.searchParams.set('keyPrefix', prefix)
  return {
    name: 'redis',
    url: url.toString(),
    async cleanup() {
      const client = new Redis(REDIS_URL)
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

export function postgresStore(): TestStore {
  const schema = `cli_${randomBytes(4).toString('hex')}`
  const url = new URL(DATABASE_URL)
  url.searchParams.set('schema', schema)
  return {
    name: 'postgres',
    url: url.toString(),
    async cleanup() {
      const client = new pg.Client({ connectionString: DATABASE_URL })
      await client.connect()
      try {
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
      } finally {
        await client.end()
      }
    },
  }
}
