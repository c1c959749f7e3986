import type { Logger } from '@errand/core'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { encodeItem } from '../src/codec.js'
import { RedisBroker } from '../src/index.js'
import { queueKeys } from '../src/keys.js'
import { deletePrefix, REDIS_URL, redisAvailable, str, text, uniquePrefix, until } from './helpers.js'

const available = await redisAvailable()

/**
 * A queue key of the wrong type (someone SET it) makes Redis commands on it fail. The scripts must
 * fail before they take anything, never after a pop (Redis does not undo a script's writes): the
 * messages wait where they are until the key is mended, then all of them run.
 */
describe.runIf(available)('RedisBroker with a queue key of the wrong type', () => {
  const prefix = uniquePrefix('wrongtype')
  const open: RedisBroker[] = []
  let raw: Redis
  let n = 0
  const queue = () => `w${n++}`
  const keysOf = (q: string) => queueKeys(prefix, q, 9)
  const warnings: string[] = []
  const logger: Logger = { debug() {}, info() {}, warn: (m) => void warnings.push(m), error() {} }

  /** Consumes `q` (acking), waits for the WRONGTYPE warning of `q`, returns the bodies seen. */
  const consumeUntilRefused = async (q: string): Promise<string[]> => {
    const b = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix, logger })
    await b.connect()
    open.push(b)
    const seen: string[] = []
    await b.consume(
      q,
      (d) => {
        seen.push(str(d.body))
        void d.ack()
      },
      { prefetch: 10 },
    )
    await until(
      () => warnings.some((w) => w.includes(`"${q}"`) && w.includes('WRONGTYPE')),
      10_000,
      `the WRONGTYPE warning of ${q}`,
    )
    return seen
  }

  beforeAll(() => {
    raw = new Redis(REDIS_URL)
  })
  afterEach(async () => {
    await Promise.all(open.splice(0).map((b) => b.close()))
  })
  afterAll(async () => {
    raw.disconnect()
    await deletePrefix(prefix)
  })

  it('an in-flight hash that is a string: nothing is taken, then everything runs', async () => {
    const q = queue()
    const k = keysOf(q)
    await raw.lpush(k.ready[0]!, ...[1, 2, 3, 4, 5].map((i) => encodeItem(`m${i}`, 0, text(`job-${i}`))))
    await raw.set(k.inflight, 'oops')
    const seen = await consumeUntilRefused(q)
    expect(await raw.llen(k.ready[0]!)).toBe(5)
    await raw.del(k.inflight)
    await until(() => seen.length === 5, 10_000, 'the five jobs')
    expect(seen.sort()).toEqual(['job-1', 'job-2', 'job-3', 'job-4', 'job-5'])
  })

  it('a lower priority level that is a string: what was popped above it is delivered', async () => {
    const q = queue()
    const k = keysOf(q)
    await raw.lpush(k.ready[5]!, ...[1, 2, 3].map((i) => encodeItem(`m${i}`, 5, text(`high-${i}`))))
    await raw.set(k.ready[1]!, 'oops')
    const seen = await consumeUntilRefused(q)
    await until(() => seen.length === 3, 10_000, 'the three jobs above the bad level')
    expect(seen).toEqual(['high-1', 'high-2', 'high-3'])
  })

  it('a due delayed message whose level is a string stays delayed until the level is mended', async () => {
    const q = queue()
    const k = keysOf(q)
    await raw.zadd(k.delayed, 0, encodeItem('d1', 2, text('delayed')))
    await raw.set(k.ready[2]!, 'oops')
    const seen = await consumeUntilRefused(q)
    expect(await raw.zcard(k.delayed)).toBe(1)
    await raw.del(k.ready[2]!)
    await until(() => seen.length === 1, 10_000, 'the delayed job')
    expect(seen).toEqual(['delayed'])
  })

  it('garbage met while the dead letters are a string goes back in order with its neighbours', async () => {
    const q = queue()
    const k = keysOf(q)
    await raw.lpush(
      k.ready[0]!,
      encodeItem('a', 0, text('first')),
      'garbage',
      encodeItem('b', 0, text('last')),
    )
    await raw.set(k.dead, 'oops')
    const seen = await consumeUntilRefused(q)
    // 'first' was taken before the garbage; the garbage and what follows it wait, in order.
    await until(() => seen.length === 1, 10_000, 'the job before the garbage')
    expect((await raw.lrangeBuffer(k.ready[0]!, 0, -1)).map((b) => b.toString())).toEqual([
      encodeItem('b', 0, text('last')).toString(),
      'garbage',
    ])
    await raw.del(k.dead)
    await until(() => seen.length === 2, 10_000, 'the job after the garbage')
    expect(seen).toEqual(['first', 'last'])
    const dead = await open[0]!.listDeadLetters(q)
    expect(dead.map((d) => [d.reason, str(d.body)])).toEqual([['undecodable', 'garbage']])
  })
})
