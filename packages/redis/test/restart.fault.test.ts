import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { createApp, defineTask } from '@errand/core'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { RedisBroker, RedisResultBackend } from '../src/index.js'
import { deletePrefix, REDIS_URL, redisAvailable, str, text, uniquePrefix, until } from './helpers.js'

const run = promisify(execFile)

/** The command that started the shared server (docs: TOOLCHAIN.md); it restarts it too. */
const START = [
  '--daemonize',
  'yes',
  '--bind',
  '127.0.0.1',
  '-::1',
  '--port',
  '6379',
  '--save',
  '',
  '--appendonly',
  'no',
  '--dir',
  '/var/lib/redis',
  '--logfile',
  '/var/log/redis/ci.log',
]

const local = new URL(REDIS_URL).port === '6379' || new URL(REDIS_URL).port === ''
const available = await redisAvailable()

async function pingOk(): Promise<boolean> {
  try {
    return (await run('redis-cli', ['-p', '6379', 'ping'], { timeout: 2000 })).stdout.trim() === 'PONG'
  } catch {
    return false
  }
}

async function untilAsync(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const start = Date.now()
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Stop the shared server (no save: it keeps nothing on disk anyway). */
async function stopRedis(): Promise<void> {
  await run('redis-cli', ['-p', '6379', 'shutdown', 'nosave']).catch(() => {})
  await untilAsync(async () => !(await pingOk()), 10_000, 'Redis to stop')
}

/** Start it again with the command that started it, and wait until it answers. */
async function startRedis(): Promise<void> {
  if (!(await pingOk())) await run('redis-server', START)
  await untilAsync(pingOk, 10_000, 'Redis to start')
}

/*
 * The shared Redis runs with `--save "" --appendonly no`: a restart wipes its data, so messages
 * that sat in Redis at the moment it stopped are gone by the server's own configuration. What
 * the adapter guarantees, and what this checks: publishes made while the server is down wait for
 * the reconnect and then succeed (or fail with ERR_CONNECTION, never silently); consumers and
 * workers reconnect and resume by themselves; everything published after the outage is delivered
 * and acked.
 */
describe.runIf(available && local)('Redis restart mid-run', () => {
  const prefix = uniquePrefix('fault')
  afterAll(async () => {
    await startRedis()
    await deletePrefix(prefix)
  })

  it('a consumer and a worker keep going; publishes and sends made during the outage arrive', async () => {
    // One restart for both (the server is shared: keep the disturbance short).
    const broker = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix })
    await broker.connect()
    const q = 'restart'
    const acked = new Set<string>()
    await broker.consume(
      q,
      (d) => {
        d.ack().then(
          () => acked.add(str(d.body)),
          () => {},
        )
      },
      { prefetch: 10 },
    )
    const double = defineTask({
      name: 'fault.double',
      queue: 'restart-app',
      input: z.number(),
      output: z.number(),
      handler: async (n) => n * 2,
    })
    const app = createApp({
      broker: new RedisBroker({ url: REDIS_URL, keyPrefix: prefix }),
      backend: new RedisResultBackend({ url: REDIS_URL, keyPrefix: prefix }),
      tasks: [double],
      logger: { debug() {}, info() {}, warn() {}, error() {} },
    })
    try {
      await app.worker({ concurrency: 8 }).start()
      const before = Array.from({ length: 200 }, (_, i) => `before-${i}`)
      await broker.publish(
        q,
        before.map((b) => ({ body: text(b) })),
      )
      const first = await Promise.all(Array.from({ length: 50 }, (_, i) => app.send(double.s(i))))
      expect(await Promise.all(first.map((r) => r.get({ timeoutMs: 10_000 })))).toEqual(
        first.map((_, i) => i * 2),
      )
      await until(() => before.every((b) => acked.has(b)), 10_000, 'messages before the restart')

      await stopRedis()
      // Made while the server is down: these wait in the clients' offline queues.
      const during = Array.from({ length: 50 }, (_, i) => `during-${i}`)
      const publishing = Promise.all(during.map((b) => broker.publish(q, [{ body: text(b) }])))
      const sending = Promise.all(Array.from({ length: 20 }, (_, i) => app.send(double.s(100 + i))))
      await startRedis()
      await publishing
      const sentDuring = await sending

      const after = Array.from({ length: 200 }, (_, i) => `after-${i}`)
      await broker.publish(
        q,
        after.map((b, i) => ({ body: text(b), ...(i % 2 ? { priority: 1 } : {}) })),
      )
      const sentAfter = await Promise.all(Array.from({ length: 50 }, (_, i) => app.send(double.s(200 + i))))
      const results = await Promise.all(
        [...sentDuring, ...sentAfter].map((r) => r.get({ timeoutMs: 15_000 })),
      )
      expect(results).toEqual([
        ...Array.from({ length: 20 }, (_, i) => (100 + i) * 2),
        ...Array.from({ length: 50 }, (_, i) => (200 + i) * 2),
      ])
      await until(
        () => [...during, ...after].every((b) => acked.has(b)),
        15_000,
        'messages after the restart',
      )
      expect(await broker.stats(q)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 })
    } finally {
      await startRedis()
      await broker.close()
      await app.close()
    }
  })

  it('leaves the shared server running', async () => {
    const client = new Redis(REDIS_URL)
    expect(await client.ping()).toBe('PONG')
    client.disconnect()
  })
})
