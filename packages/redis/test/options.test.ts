import { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { createBroker, createResultBackend, RedisBroker, RedisResultBackend } from '../src/index.js'
import { parseBrokerOptions, parseRedisUrl } from '../src/options.js'

describe('Redis options', () => {
  it('parses redis:// and rediss:// URLs', () => {
    expect(parseRedisUrl('redis://127.0.0.1:6380/2').options).toEqual({
      host: '127.0.0.1',
      port: 6380,
      db: 2,
    })
    expect(parseRedisUrl('redis://u%40x:p%3Aw@host').options).toMatchObject({
      host: 'host',
      port: 6379,
      username: 'u@x',
      password: 'p:w',
    })
    expect(parseRedisUrl('redis://:secret@[::1]:7000').options).toMatchObject({
      host: '::1',
      port: 7000,
      password: 'secret',
    })
    const tls = parseRedisUrl('rediss://cache.example.com')
    expect(tls.tls).toBe(true)
    expect(tls.options.tls).toEqual({ servername: 'cache.example.com' })
  })

  it('reads keyPrefix, leaseMs and maxPriority from the query string', () => {
    const parsed = parseBrokerOptions('redis://127.0.0.1?keyPrefix=app&leaseMs=5000&maxPriority=3')
    expect(parsed).toMatchObject({ keyPrefix: 'app', leaseMs: 5000, maxPriority: 3 })
    expect(new RedisBroker('redis://127.0.0.1?maxPriority=3').capabilities.maxPriority).toBe(3)
  })

  it('refuses bad options naming the option, with the password masked', () => {
    const cases: [() => unknown, string][] = [
      [() => new RedisBroker({ url: 'http://x' }), 'url'],
      [() => new RedisBroker({ url: 'redis://u:hunter2@h/x' }), 'db'],
      [() => new RedisBroker({ url: 'redis://h?bogus=1' }), 'bogus'],
      [() => new RedisBroker({ url: 'redis://h?leaseMs=-3' }), 'leaseMs'],
      [() => new RedisBroker({ leaseMs: 0 }), 'leaseMs'],
      [() => new RedisBroker({ maxPriority: 99 }), 'maxPriority'],
      [() => new RedisBroker({ keyPrefix: 'a{b}' }), 'keyPrefix'],
      [() => new RedisBroker({ nope: 1 } as never), 'nope'],
      [() => new RedisBroker({ url: 'redis://h', tls: {} }), 'tls'],
      [() => new RedisResultBackend({ client: {} as never }), 'client'],
      [() => new RedisResultBackend({ url: 'redis://h?leaseMs=1' }), 'leaseMs'],
    ]
    for (const [make, option] of cases) {
      let error: unknown
      try {
        make()
      } catch (err) {
        error = err
      }
      expect(error, option).toMatchObject({ code: 'ERR_INVALID_OPTION', option, adapter: 'redis' })
      expect(String((error as Error).message)).not.toContain('hunter2')
    }
  })

  it('refuses a client together with url or connection options', () => {
    const client = new Redis({ lazyConnect: true })
    expect(() => new RedisBroker({ client, url: 'redis://h' })).toThrow(
      expect.objectContaining({ option: 'client' }),
    )
    expect(() => new RedisBroker({ client, redisOptions: {} })).toThrow(
      expect.objectContaining({ option: 'redisOptions' }),
    )
    client.disconnect()
  })

  it('the URL factories do not connect', () => {
    const broker = createBroker('redis://127.0.0.1:1')
    const backend = createResultBackend('redis://127.0.0.1:1')
    expect(broker.name).toBe('redis')
    expect(backend.capabilities.pushWait).toBe(true)
  })

  it('connect() to an unreachable server fails with ERR_CONNECTION and a masked URL', async () => {
    const broker = new RedisBroker({
      url: 'redis://user:hunter2@127.0.0.1:1',
      redisOptions: { retryStrategy: () => null, connectTimeout: 500 },
    })
    const err = await broker.connect().catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_CONNECTION' })
    expect((err as Error).message).toContain('redis://user:***@127.0.0.1:1')
    expect((err as Error).message).not.toContain('hunter2')
    await broker.close()
  })
})
