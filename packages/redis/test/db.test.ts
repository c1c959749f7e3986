import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { RedisBroker, RedisResultBackend } from '../src/index.js'
import { REDIS_URL, redisAvailable, text, uniquePrefix } from './helpers.js'

const available = await redisAvailable()

/** `REDIS_URL` with its path set to `/<db>`. */
function withDb(db: string | number): string {
  const url = new URL(REDIS_URL)
  url.pathname = `/${db}`
  return url.toString()
}

describe('Redis db number', () => {
  it('refuses a db that is not an integer >= 0, naming db', () => {
    const cases: [() => unknown, string][] = [
      [() => new RedisBroker('redis://u:hunter2@127.0.0.1/abc'), 'db'],
      [() => new RedisBroker('redis://127.0.0.1/-1'), 'db'],
      [() => new RedisBroker('redis://127.0.0.1/1.5'), 'db'],
      [() => new RedisBroker('redis://127.0.0.1/99999999999999999999'), 'db'],
      [() => new RedisResultBackend('redis://127.0.0.1/x'), 'db'],
      [() => new RedisBroker({ url: 'redis://127.0.0.1', redisOptions: { db: -1 } }), 'redisOptions.db'],
      [() => new RedisBroker({ url: 'redis://127.0.0.1', redisOptions: { db: 1.5 } }), 'redisOptions.db'],
    ]
    for (const [make, option] of cases) {
      let error: unknown
      try {
        make()
      } catch (err) {
        error = err
      }
      expect(error, option).toMatchObject({ code: 'ERR_INVALID_OPTION', option, adapter: 'redis' })
      expect((error as Error).message).toMatch(/database number/)
      expect((error as Error).message).not.toContain('hunter2')
    }
  })

  describe.runIf(available)('on the server', () => {
    const prefix = uniquePrefix('db')
    const raw = new Redis(REDIS_URL, { lazyConnect: true })

    afterAll(async () => {
      // Only our keys, in the db the test used.
      await raw.select(5)
      const keys = await raw.keys(`${prefix}:*`)
      if (keys.length > 0) await raw.del(...keys)
      raw.disconnect()
    })

    it('connect() fails naming the db when the server refuses SELECT, broker and backend', async () => {
      const databases = Number(((await raw.config('GET', 'databases')) as string[])[1])
      const tooHigh = databases + 83 // 99 on a default server
      for (const adapter of [new RedisBroker(withDb(tooHigh)), new RedisResultBackend(withDb(tooHigh))]) {
        const err = await adapter.connect().then(
          () => undefined,
          (e: unknown) => e,
        )
        await adapter.close()
        expect(err).toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'db', adapter: 'redis' })
        expect((err as Error).message).toContain(`select db ${tooHigh}`)
        expect((err as Error).message).toMatch(/DB index is out of range/)
      }
    })

    it('jobs land in the db the URL names', async () => {
      const broker = new RedisBroker({ url: withDb(5), keyPrefix: prefix })
      await broker.connect()
      await broker.publish('q', [{ body: text('in db 5') }])
      await broker.close()
      await raw.select(0)
      expect(await raw.keys(`${prefix}:*`)).toEqual([])
      await raw.select(5)
      expect(await raw.keys(`${prefix}:*`)).toEqual([`${prefix}:{q}:ready`])
    })
  })
})
