import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createApp, defineTask, group, type Logger, MemoryBroker } from '../src/index.js'

// A producer with a shared broker and `backend: 'memory://'` used to wait out its timeout while a
// worker in another process stored the result in its own memory, with nothing said anywhere.

const t = defineTask({ name: 'split.t', queue: 'split-q', input: z.number(), handler: (n) => n })

function capture(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = []
  const logger: Logger = { debug() {}, info() {}, warn: (m) => void warnings.push(m), error() {} }
  return { logger, warnings }
}

/** A broker that says it is not the in-memory one, as a Redis broker would. */
function sharedBroker(store: string): MemoryBroker {
  const broker = new MemoryBroker({ name: store })
  Object.defineProperty(broker, 'name', { value: 'fakeredis' })
  return broker
}

async function timeoutOf(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p
  } catch (err) {
    return err as { code?: string; message: string }
  }
  return { message: 'resolved' }
}

describe('memory results with a shared broker', () => {
  it('logs a warning at connect naming the problem and the fix', async () => {
    const { logger, warnings } = capture()
    const app = createApp({
      broker: sharedBroker('split-a'),
      backend: 'memory://split-a',
      tasks: [t],
      logger,
    })
    await app.connect()
    await app.close()
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toContain("results are kept in this process's memory")
    expect(warnings[0]).toContain('fakeredis')
    expect(warnings[0]).toContain('shared backend')
  })

  it('says nothing when broker and backend are both in memory, or the backend is shared', async () => {
    const { logger, warnings } = capture()
    const both = createApp({ broker: 'memory://split-b', backend: 'memory://split-b', tasks: [t], logger })
    await both.connect()
    await both.close()
    const none = createApp({ broker: sharedBroker('split-b'), tasks: [t], logger })
    await none.connect()
    await none.close()
    expect(warnings).toEqual([])
  })

  it("the get() timeout names the queue and, with a split setup, results in another process's memory", async () => {
    const { logger } = capture()
    const app = createApp({
      broker: sharedBroker('split-c'),
      backend: 'memory://split-c',
      tasks: [t],
      logger,
    })
    try {
      const r = await app.send(t.s(1))
      const err = await timeoutOf(r.get({ timeoutMs: 20 }))
      expect(err.code).toBe('ERR_TIMEOUT')
      expect(err.message).toContain('no worker is consuming queue "split-q"')
      expect(err.message).toContain("another process's memory")
      const byId = await timeoutOf(app.result(r.id).get({ timeoutMs: 20 }))
      expect(byId.message).toContain("another process's memory")
      const g = await app.send(group(t.s(1), t.s(2).set({ queue: 'split-other' })))
      const groupErr = await timeoutOf(g.get({ timeoutMs: 20 }))
      expect(groupErr.code).toBe('ERR_TIMEOUT')
      expect(groupErr.message).toContain('queue "split-q", "split-other"')
    } finally {
      await app.close()
    }
  })

  it('the get() timeout does not blame memory when the broker is in memory too', async () => {
    const { logger } = capture()
    const app = createApp({ broker: 'memory://split-d', backend: 'memory://split-d', tasks: [t], logger })
    try {
      const err = await timeoutOf((await app.send(t.s(1))).get({ timeoutMs: 20 }))
      expect(err.code).toBe('ERR_TIMEOUT')
      expect(err.message).toContain('no worker is consuming queue "split-q"')
      expect(err.message).not.toContain('memory')
    } finally {
      await app.close()
    }
  })
})
