import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createApp, defineTask, MemoryBroker } from '../src/index.js'

describe('app.queues()', () => {
  it('lists the default queue, the queues of its tasks, and every queue the broker holds anything for', async () => {
    const mail = defineTask({ name: 'q.mail', queue: 'mail', input: z.object({}), handler: () => 1 })
    const plain = defineTask({ name: 'q.plain', input: z.object({}), handler: () => 1 })
    const store = `queues-${Math.random()}`
    const other = new MemoryBroker({ name: store })
    await other.connect()
    await other.publish('foreign', [{ body: new TextEncoder().encode('x') }])
    await other.stats('empty-one') // created, holds nothing: not listed
    const app = createApp({
      broker: new MemoryBroker({ name: store }),
      tasks: [mail, plain],
      defaultQueue: 'main',
    })
    try {
      expect(await app.queues()).toEqual(['foreign', 'mail', 'main'])
    } finally {
      await app.close()
      await other.close()
    }
  })
})
