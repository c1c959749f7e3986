import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import {
  createApp,
  type DeadLetterReason,
  defineTask,
  type SerializedError,
  silentLogger,
} from '../src/index.js'

async function rejection(
  p: Promise<unknown>,
): Promise<{ code?: string; message: string; remote?: SerializedError }> {
  try {
    await p
  } catch (err) {
    return err as { code?: string; message: string; remote?: SerializedError }
  }
  return { message: 'resolved' }
}

describe('an output that cannot be serialised', () => {
  it('fails the task for good after one run: FAILURE with ERR_SERIALIZATION, dead-lettered as rejected', async () => {
    let runs = 0
    const dead: { reason: DeadLetterReason; error: SerializedError | undefined }[] = []
    const total = defineTask({
      name: 'out.bigint',
      queue: 'out-bigint',
      input: z.null(),
      // Retries allowed: a deterministic serialisation error must not use them.
      retry: { attempts: 3, backoff: { type: 'fixed', delayMs: 0 } },
      handler: () => {
        runs++
        return { total: 10n }
      },
    })
    const app = createApp({
      broker: 'memory://out-ser',
      backend: 'memory://out-ser',
      tasks: [total],
      logger: silentLogger,
    })
    try {
      await app
        .worker({
          concurrency: 1,
          hooks: { onDeadLetter: (_, reason, error) => void dead.push({ reason, error }) },
        })
        .start()
      const r = await app.send(total.s(null))
      const err = await rejection(r.get({ timeoutMs: 5000 }))
      expect(err.code, err.message).toBe('ERR_TASK_FAILED')
      expect(err.message).toContain('output.total')
      expect(err.message).toContain('BigInt')
      expect(err.remote?.code).toBe('ERR_SERIALIZATION')
      expect((await r.info())?.state).toBe('FAILURE')
      const letters = await app.deadLetters('out-bigint').list()
      expect(letters).toHaveLength(1)
      expect(letters[0]?.reason).toBe('rejected')
      expect(letters[0]?.error?.code).toBe('ERR_SERIALIZATION')
      expect(dead).toHaveLength(1)
      expect(runs).toBe(1)
    } finally {
      await app.close()
    }
  })

  it('also for a circular output, and the same rule for a Map', async () => {
    const cyclic = defineTask({
      name: 'out.cyclic',
      queue: 'out-cyclic',
      input: z.boolean(),
      handler: (map) => {
        if (map) return new Map([['a', 1]])
        const o: Record<string, unknown> = {}
        o.me = o
        return o
      },
    })
    const app = createApp({
      broker: 'memory://out-cyc',
      backend: 'memory://out-cyc',
      tasks: [cyclic],
      logger: silentLogger,
    })
    try {
      await app.worker({ concurrency: 2 }).start()
      const circular = await rejection((await app.send(cyclic.s(false))).get({ timeoutMs: 5000 }))
      expect(circular.remote?.code).toBe('ERR_SERIALIZATION')
      expect(circular.message).toContain('output.me: a circular reference')
      const map = await rejection((await app.send(cyclic.s(true))).get({ timeoutMs: 5000 }))
      expect(map.remote?.code).toBe('ERR_SERIALIZATION')
      expect(map.message).toContain('Map')
    } finally {
      await app.close()
    }
  })
})

describe('retries default', () => {
  it('a task that names no retry policy runs once when it throws (attempts default to 1)', async () => {
    let runs = 0
    const flaky = defineTask({
      name: 'out.throws',
      queue: 'out-throws',
      input: z.null(),
      handler: () => {
        runs++
        throw new Error('boom')
      },
    })
    expect(flaky.retry.attempts).toBe(1)
    const app = createApp({
      broker: 'memory://out-thr',
      backend: 'memory://out-thr',
      tasks: [flaky],
      logger: silentLogger,
    })
    try {
      await app.worker({ concurrency: 1 }).start()
      const err = await rejection((await app.send(flaky.s(null))).get({ timeoutMs: 5000 }))
      expect(err.code).toBe('ERR_TASK_FAILED')
      expect(runs).toBe(1)
      expect((await app.deadLetters('out-throws').list())[0]?.reason).toBe('exhausted')
    } finally {
      await app.close()
    }
  })
})
