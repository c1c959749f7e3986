import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Logger } from '@errand/core'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { RedisBroker, RedisResultBackend } from '../src/index.js'
import { REDIS_URL, redisAvailable, text, uniquePrefix, until } from './helpers.js'

const available = await redisAvailable()

/** A free loopback port (the OS picks it). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0))
    })
  })
}

/** A throwaway redis-server of our own on loopback (never the shared one), with `databases` dbs. */
async function startServer(port: number, databases: number, dir: string): Promise<ChildProcess> {
  const server = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--databases', String(databases), '--save', ''].concat([
      '--appendonly',
      'no',
      '--dir',
      dir,
    ]),
    { stdio: 'ignore' },
  )
  server.on('error', () => {})
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => 20 })
  probe.on('error', () => {})
  let up = false
  probe.on('ready', () => {
    up = true
  })
  probe.connect().catch(() => {})
  await until(() => up, 10_000, `redis-server on ${port}`)
  probe.disconnect()
  return server
}

async function stopServer(server: ChildProcess): Promise<void> {
  if (server.exitCode !== null || server.signalCode !== null) return
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()))
  server.kill('SIGTERM')
  await exited
}

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

  describe.runIf(available)('on a throwaway server restarted with fewer databases', () => {
    it('after a reconnect that refuses the db it logs, fails publishes and never writes to db 0', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'errand-redis-db-'))
      const port = await freePort()
      const errors: string[] = []
      const logger: Logger = { debug() {}, info() {}, warn() {}, error: (m) => void errors.push(m) }
      let server = await startServer(port, 16, dir)
      const broker = new RedisBroker({
        url: `redis://127.0.0.1:${port}/9`,
        keyPrefix: 'dbtest',
        logger,
        redisOptions: { maxRetriesPerRequest: 2 },
      })
      try {
        await broker.connect()
        await broker.publish('q', [{ body: text('in db 9') }])
        await stopServer(server)
        server = await startServer(port, 4, dir) // db 9 no longer exists
        // Sent while the client reconnects: it must wait and fail, not run on db 0.
        const err = await broker.publish('q', [{ body: text('must not land in db 0') }]).then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(err).toMatchObject({ code: 'ERR_CONNECTION' })
        const check = new Redis({ port, host: '127.0.0.1', lazyConnect: true })
        const keysInDb0 = await check.dbsize().finally(() => check.disconnect())
        expect(keysInDb0).toBe(0)
        expect(errors.some((m) => m.includes('refused to select db 9'))).toBe(true)
      } finally {
        await broker.close()
        await stopServer(server)
        await rm(dir, { recursive: true, force: true })
      }
    })
  })
})
