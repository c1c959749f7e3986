import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createApp, defineTask, MemoryBroker, silentLogger } from '../src/index.js'

// A message from a foreign or stale producer that gets a field wrong is dead-lettered as
// undecodable; when it names a task id, FAILURE is recorded under it so that handle settles.

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v))

describe('an undecodable message that names a task id', () => {
  it('settles that id with FAILURE (ERR_DECODE) and never overwrites a final record', async () => {
    const store = 'undecodable'
    const t = defineTask({ name: 'undec.t', queue: store, input: z.number(), handler: (n) => n })
    const app = createApp({
      broker: `memory://${store}`,
      backend: `memory://${store}`,
      tasks: [t],
      logger: silentLogger,
    })
    const raw = new MemoryBroker({ name: store })
    await raw.connect()
    try {
      let deadLetters = 0
      let twoDead: () => void = () => {}
      const dead = new Promise<void>((resolve) => {
        twoDead = resolve
      })
      await app
        .worker({ concurrency: 1, hooks: { onDeadLetter: () => void (++deadLetters === 2 && twoDead()) } })
        .start()
      const done = await app.send(t.s(1))
      expect(await done.get({ timeoutMs: 5000 })).toBe(1)
      const bad = (id: string) => ({
        v: 1,
        id,
        task: 'undec.t',
        input: 1,
        queue: store,
        attempt: 1,
        createdAt: 1,
        priority: -1,
      })
      await raw.publish(store, [{ body: enc(bad('foreign-1')) }, { body: enc(bad(done.id)) }])
      await dead
      const err = await app
        .result('foreign-1')
        .get({ timeoutMs: 5000 })
        .catch((e: unknown) => e as { code?: string; remote?: { code?: string } })
      expect((err as { code?: string }).code).toBe('ERR_TASK_FAILED')
      expect((err as { remote?: { code?: string } }).remote?.code).toBe('ERR_DECODE')
      expect((await done.info())?.state).toBe('SUCCESS')
      const letters = await app.deadLetters(store).list()
      expect(letters.map((l) => l.reason)).toEqual(['undecodable', 'undecodable'])
    } finally {
      await raw.close()
      await app.close()
    }
  })
})
