// Flow-control options are checked where they are given, and a limit that no store could enforce
// across workers is refused at worker start rather than silently kept per process.
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import {
  createApp,
  defineTask,
  MemoryResultBackend,
  resultBackendCapabilities,
  silentLogger,
} from '../src/index.js'

const failure = async (fn: () => unknown): Promise<{ code?: string; message: string }> => {
  try {
    await fn()
  } catch (err) {
    return err as { code?: string; message: string }
  }
  throw new Error('expected a failure')
}

const limited = defineTask({
  name: 'flow.limited',
  queue: 'flow-options',
  input: z.object({ k: z.string() }),
  rateLimit: { max: 3, perMs: 1000, key: (i) => i.k },
  handler: () => null,
})

describe('flow-control options', () => {
  it('a bad rate or concurrency limit on a task names the field', async () => {
    const bad = await failure(() =>
      defineTask({
        name: 'flow.bad',
        input: z.null(),
        rateLimit: { max: 0, perMs: 1000 },
        handler: () => null,
      }),
    )
    expect(bad.code).toBe('ERR_VALIDATION')
    expect(bad.message).toContain('rateLimit.max')
    const extra = await failure(() =>
      defineTask({
        name: 'flow.bad2',
        input: z.null(),
        concurrency: { max: 2, lease: 5 } as never,
        handler: () => null,
      }),
    )
    expect(extra.message).toContain('concurrency')
  })

  it('a bad queue limit names the queue and the field', async () => {
    const bad = await failure(() =>
      createApp({ broker: 'memory://', queues: { emails: { rateLimit: { max: 1, perMs: -1 } } } }),
    )
    expect(bad.code).toBe('ERR_INVALID_OPTION')
    expect(bad.message).toContain('queues.emails.rateLimit.perMs')
  })

  it('a worker with a limited task and no result backend refuses to start, naming the task', async () => {
    const app = createApp({ broker: 'memory://', tasks: [limited], logger: silentLogger })
    try {
      const err = await failure(() => app.worker().start())
      expect(err.code).toBe('ERR_NOT_SUPPORTED')
      expect(err.message).toContain('task "flow.limited"')
      const pause = await failure(() => app.pause('flow-options'))
      expect(pause.code).toBe('ERR_NOT_SUPPORTED')
      expect(pause.message).toContain('pause()')
    } finally {
      await app.close()
    }
  })

  it('a backend without flow control is named when a queue limit needs it', async () => {
    const backend = new MemoryResultBackend()
    Object.defineProperty(backend, 'capabilities', {
      value: resultBackendCapabilities({ pushWait: true, events: true, flowControl: false }),
    })
    const app = createApp({
      broker: 'memory://',
      backend,
      queues: { 'flow-options': { concurrency: { max: 1 } } },
      logger: silentLogger,
    })
    try {
      const err = await failure(() => app.worker({ queues: ['flow-options'] }).start())
      expect(err.code).toBe('ERR_NOT_SUPPORTED')
      expect(err.message).toContain('queue "flow-options"')
      expect(err.message).toContain('"memory" has none')
    } finally {
      await app.close()
    }
  })

  it('a key function that throws dead-letters the task as invalid-input, naming the limit', async () => {
    const store = `flow-${Math.random().toString(36).slice(2)}`
    const throws = defineTask({
      name: 'flow.throwing-key',
      queue: 'flow-key',
      input: z.object({ k: z.string() }),
      concurrency: {
        max: 1,
        key: () => {
          throw new Error('no key')
        },
      },
      handler: () => null,
    })
    const app = createApp({
      broker: `memory://${store}`,
      backend: `memory://${store}`,
      tasks: [throws],
      logger: silentLogger,
    })
    try {
      await app.worker().start()
      const sent = await app.send(throws.s({ k: 'a' }))
      await expect(sent.get({ timeoutMs: 5000 })).rejects.toThrow('concurrency.key')
      const [dead] = await app.deadLetters('flow-key').list()
      expect(dead?.reason).toBe('invalid-input')
    } finally {
      await app.close()
    }
  })
})

describe('keep-first dedup after the first task finished', () => {
  it('of sends racing for the next task, exactly one publishes and the others get its handle', async () => {
    const store = `dedup-${Math.random().toString(36).slice(2)}`
    let runs = 0
    const t = defineTask({
      name: 'flow.dedup',
      queue: store,
      input: z.number(),
      handler: (n) => {
        runs++
        return n
      },
    })
    const app = createApp({
      broker: `memory://${store}`,
      backend: `memory://${store}`,
      tasks: [t],
      logger: silentLogger,
    })
    try {
      await app.worker().start()
      const first = await app.send(t.s(0), { dedupKey: 'k' })
      await first.get({ timeoutMs: 5000 })
      const racing = await Promise.all([1, 2, 3, 4].map((n) => app.send(t.s(n), { dedupKey: 'k' })))
      const ids = new Set(racing.map((r) => r.id))
      expect(ids.size, 'racing sends after the first finished must share one new task').toBe(1)
      expect(ids.has(first.id)).toBe(false)
      await racing[0]?.get({ timeoutMs: 5000 })
      await new Promise((r) => setTimeout(r, 100))
      expect(runs, 'the first task and exactly one successor ran').toBe(2)
    } finally {
      await app.close()
    }
  })
})
