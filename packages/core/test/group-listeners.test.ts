import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createApp, defineTask, group, silentLogger } from '../src/index.js'

describe('a large group', () => {
  it('get() on 10,000 members settles without a MaxListenersExceededWarning', async () => {
    const warnings: Error[] = []
    const onWarning = (w: Error) => warnings.push(w)
    process.on('warning', onWarning)
    const double = defineTask({
      name: 'big.double',
      queue: 'big-group',
      input: z.number(),
      handler: (n) => n * 2,
    })
    const app = createApp({
      broker: 'memory://big-group',
      backend: 'memory://big-group',
      tasks: [double],
      logger: silentLogger,
    })
    try {
      const members = Array.from({ length: 10_000 }, (_, i) => double.s(i))
      const r = await app.send(group(...members))
      // Waiters first, then the worker: every member's wait is registered while none has finished.
      const outputs = r.get({ timeoutMs: 60_000 })
      await app.worker({ concurrency: 100 }).start()
      const values = await outputs
      expect(values).toHaveLength(10_000)
      expect(values[9_999]).toBe(19_998)
      // Warnings are emitted on the next tick after the listener that crossed the limit.
      await new Promise((resolve) => setImmediate(resolve))
      expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([])
    } finally {
      process.off('warning', onWarning)
      await app.close()
    }
  })
})
