import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createApp, defineTask, MemoryResultBackend } from '@errand/core'
import { afterAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { AmqpBroker } from '../src/index.js'
import type { WorkerMessage } from './fixtures/sigterm-worker.js'
import {
  AMQP_URL,
  BrokerPool,
  quietLogger,
  rabbitAvailable,
  TEST_QUEUE_EXPIRES_MS,
  uniqueQueue,
} from './helpers.js'

const available = await rabbitAvailable()
const pool = new BrokerPool()
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
/** Runs the children on the workspace's TypeScript sources (test-support/README.md). */
const TS_HOOKS = fileURLToPath(new URL('../../../test-support/ts-hooks.mjs', import.meta.url))

/** `promise`, or a rejection naming `what` after `timeoutMs`. */
function within<T>(what: string, timeoutMs: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${timeoutMs} ms`)), timeoutMs)
    }),
  ]).finally(() => clearTimeout(timer))
}

describe.runIf(available)('amqp: runWorker and SIGTERM', () => {
  afterAll(() => pool.cleanup(), 60_000)

  it('SIGTERM while tasks run: they finish, the process exits, and none of them runs again', async () => {
    const queue = uniqueQueue('amqp-sigterm')
    pool.queues.add(queue)
    const n = 8
    const runs = new Map<number, number>()
    const finished = new Set<number>()
    const ran = (i: number) => runs.set(i, (runs.get(i) ?? 0) + 1)
    const child = fork(fixture('sigterm-worker.ts'), [], {
      execArgv: ['--conditions=source', '--import', TS_HOOKS],
      env: {
        ...process.env,
        AMQP_URL,
        ERRAND_QUEUE: queue,
        QUEUE_EXPIRES_MS: String(TEST_QUEUE_EXPIRES_MS),
        TASK_MS: '300',
        CONCURRENCY: String(n),
      },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    })
    let output = ''
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()))
    // 'close', not 'exit': it comes after the IPC channel and pipes are drained, so every message
    // the worker sent before it exited has been seen.
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
    // Ready, or the reason it never will be (a later exit cannot reject a settled promise).
    let ready!: () => void
    const isReady = new Promise<void>((resolve, reject) => {
      ready = resolve
      exited.then((code) => reject(new Error(`the worker exited (${code}) before it was ready: ${output}`)))
    })
    let allStarted!: () => void
    const started = new Promise<void>((resolve) => (allStarted = resolve))
    child.on('message', (m: WorkerMessage) => {
      if (m.kind === 'ready') ready()
      if (m.kind === 'started') {
        ran(m.i)
        if (runs.size === n) allStarted()
      }
      if (m.kind === 'finished') finished.add(m.i)
    })

    const slow = defineTask({
      name: 'amqp.sigterm.slow',
      queue,
      input: z.object({ i: z.number().int() }),
      handler: ({ i }) => {
        ran(i)
        return i
      },
    })
    let sentinelDone!: () => void
    const sentinelRan = new Promise<void>((resolve) => (sentinelDone = resolve))
    const sentinel = defineTask({
      name: 'amqp.sigterm.sentinel',
      queue,
      input: z.null(),
      handler: () => sentinelDone(),
    })
    const app = createApp({
      // Never the shared 'default' queue: a worker consumes its app's default queue too.
      defaultQueue: queue,
      broker: pool.track(
        new AmqpBroker({
          url: AMQP_URL,
          queueExpiresMs: TEST_QUEUE_EXPIRES_MS,
          logger: quietLogger(),
        }),
      ),
      backend: new MemoryResultBackend(),
      tasks: [slow, sentinel],
      logger: quietLogger(),
    })
    try {
      await within('the worker process to start', 60_000, isReady)
      await app.sendMany(Array.from({ length: n }, (_, i) => slow.s({ i })))
      await within(`all ${n} tasks to start`, 15_000, started)
      child.kill('SIGTERM')
      const code = await within('the worker to exit after SIGTERM', 20_000, exited)
      expect(code, output).toBe(0)
      // Graceful: everything that started finished inside the grace period.
      expect(finished.size).toBe(n)
      expect((await app.stats(queue)).ready).toBe(0)
      // A second worker runs until a sentinel sent now: a task the shutdown put back would come
      // first (requeued messages keep their place).
      await app.send(sentinel.s(null))
      await app.worker({ concurrency: n }).start()
      await within('the sentinel', 10_000, sentinelRan)
      expect(runs.size).toBe(n)
      expect([...runs.values()]).toEqual(Array(n).fill(1))
    } finally {
      child.kill('SIGKILL')
      await app.close()
    }
  }, 120_000)
})
