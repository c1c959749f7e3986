import type { Delivery } from '@errand/core'
import { afterAll, describe, expect, it } from 'vitest'
import { RedisBroker } from '../src/index.js'
import { deletePrefix, REDIS_URL, redisAvailable, text, uniquePrefix } from './helpers.js'

const available = await redisAvailable()

describe.runIf(available)('RedisBroker.listQueues', () => {
  const prefix = uniquePrefix('lq')
  const other = uniquePrefix('lq-other')
  afterAll(async () => {
    await deletePrefix(prefix)
    await deletePrefix(other)
  })

  it('lists every queue holding ready, delayed, in-flight or dead messages, names with braces intact, and no other prefix', async () => {
    const b = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, maxPriority: 3 })
    const stranger = new RedisBroker({ url: REDIS_URL, keyPrefix: other })
    await Promise.all([b.connect(), stranger.connect()])
    try {
      expect(await b.listQueues()).toEqual([])
      await b.publish('ready', [{ body: text('a') }])
      await b.publish('prio', [{ body: text('p'), priority: 2 }])
      await b.publish('later', [{ body: text('d'), delayMs: 60_000 }])
      await b.publish('odd{name}:%', [{ body: text('x') }])
      await b.publish('held', [{ body: text('h') }, { body: text('dead') }])
      await stranger.publish('not-mine', [{ body: text('n') }])
      const got: Delivery[] = []
      let both!: () => void
      const taken = new Promise<void>((resolve) => {
        both = resolve
      })
      const c = await b.consume(
        'held',
        (d) => {
          got.push(d)
          if (got.length === 2) both()
        },
        { prefetch: 2 },
      )
      await taken
      await c.cancel()
      await got[1]!.deadLetter({ reason: 'rejected' })
      expect(await b.listQueues()).toEqual(['held', 'later', 'odd{name}:%', 'prio', 'ready'])
      await got[0]!.ack()
      await b.purge('ready')
      await b.purge('held')
      // 'held' still has its dead letter; 'ready' is empty now.
      expect(await b.listQueues()).toEqual(['held', 'later', 'odd{name}:%', 'prio'])
    } finally {
      await Promise.all([b.close(), stranger.close()])
    }
  })
})
