import { MAX_FLOW_KEY_LENGTH } from '@errand/core'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RedisResultBackend } from '../src/index.js'
import { flowKeys } from '../src/keys.js'
import { deletePrefix, REDIS_URL, redisAvailable, uniquePrefix } from './helpers.js'
import { type LocalCluster, startLocalCluster } from './local-cluster.js'

const available = await redisAvailable()
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * What the shared conformance cannot see: the keys the Redis flow control leaves behind (every
 * one expires), its server-clock timestamps, atomicity under concurrent callers, and a key of the
 * wrong type.
 */
describe.runIf(available)('RedisResultBackend flow control (Redis specifics)', () => {
  const prefix = uniquePrefix('flow')
  const keys = flowKeys(prefix)
  const open: RedisResultBackend[] = []
  let raw: Redis
  let n = 0
  const key = (label = 'k') => `${label}-${n++}`

  const backend = async (): Promise<RedisResultBackend> => {
    const b = new RedisResultBackend({ url: REDIS_URL, keyPrefix: prefix })
    await b.connect()
    open.push(b)
    return b
  }

  beforeAll(() => {
    raw = new Redis(REDIS_URL)
  })
  afterAll(async () => {
    await Promise.all(open.map((b) => b.close()))
    raw.disconnect()
    await deletePrefix(prefix)
  })

  it('says it has flow control', async () => {
    const b = await backend()
    expect(b.capabilities.flowControl).toBe(true)
  })

  it('takeRate: the rate key expires with its window (no key is left without a TTL)', async () => {
    const b = await backend()
    const k = key('rate')
    expect(await b.takeRate(k, 2, 60_000)).toBe(0)
    const pttl = await raw.pttl(keys.rate(k))
    expect(pttl).toBeGreaterThan(59_000)
    expect(pttl).toBeLessThanOrEqual(60_000)
    const short = key('rate')
    expect(await b.takeRate(short, 1, 40)).toBe(0)
    await sleep(80)
    expect(await raw.exists(keys.rate(short))).toBe(0)
  })

  it('takeRate: a refusal records nothing and says how long until the oldest start leaves', async () => {
    const b = await backend()
    const k = key('rate')
    expect(await b.takeRate(k, 2, 10_000)).toBe(0)
    await sleep(30)
    expect(await b.takeRate(k, 2, 10_000)).toBe(0)
    const wait = await b.takeRate(k, 2, 10_000)
    expect(wait).toBeGreaterThan(9_000)
    expect(wait).toBeLessThanOrEqual(10_000 - 30 + 1)
    expect(await raw.zcard(keys.rate(k))).toBe(2)
  })

  it('takeRate: starts are server-clock microseconds, stored exactly', async () => {
    const b = await backend()
    const k = key('rate')
    expect(await b.takeRate(k, 5, 60_000)).toBe(0)
    const [, score] = await raw.zrange(keys.rate(k), '0', '-1', 'WITHSCORES')
    const [sec, usec] = await raw.time()
    const now = Number(sec) * 1e6 + Number(usec)
    expect(score).toMatch(/^\d{16}$/)
    expect(now - Number(score)).toBeGreaterThanOrEqual(0)
    expect(now - Number(score)).toBeLessThan(5_000_000)
  })

  it('takeRate: concurrent callers of two instances record exactly max starts', async () => {
    const [a, b] = [await backend(), await backend()]
    const k = key('rate')
    const calls = Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? a : b).takeRate(k, 25, 60_000))
    const replies = await Promise.all(calls)
    expect(replies.filter((r) => r === 0)).toHaveLength(25)
    expect(replies.filter((r) => r > 0)).toHaveLength(35)
    expect(await raw.zcard(keys.rate(k))).toBe(25)
  })

  it('takeRate: max lowered below the recorded count waits for enough starts to leave', async () => {
    const b = await backend()
    const k = key('rate')
    expect(await b.takeRate(k, 3, 10_000)).toBe(0)
    await sleep(200)
    expect(await b.takeRate(k, 3, 10_000)).toBe(0)
    expect(await b.takeRate(k, 3, 10_000)).toBe(0)
    // With max 3 the oldest start (200 ms older) must leave; with max 2, two must: the wait is
    // the second start's.
    const wait3 = await b.takeRate(k, 3, 10_000)
    const wait2 = await b.takeRate(k, 2, 10_000)
    expect(wait3).toBeLessThanOrEqual(10_000 - 200 + 1)
    expect(wait2 - wait3).toBeGreaterThanOrEqual(150)
    expect(await raw.zcard(keys.rate(k))).toBe(3)
  })

  it('acquireSlot: the slot key expires with its longest lease, and renewing moves it', async () => {
    const b = await backend()
    const k = key('slot')
    expect(await b.acquireSlot(k, 'h1', 2, 5_000)).toBe(true)
    expect(await b.acquireSlot(k, 'h2', 2, 60_000)).toBe(true)
    let pttl = await raw.pttl(keys.slots(k))
    expect(pttl).toBeGreaterThan(59_000)
    expect(pttl).toBeLessThanOrEqual(60_001)
    // h2 renews with a short lease: the key now lives as long as h1's.
    expect(await b.acquireSlot(k, 'h2', 2, 1_000)).toBe(true)
    pttl = await raw.pttl(keys.slots(k))
    expect(pttl).toBeGreaterThan(4_000)
    expect(pttl).toBeLessThanOrEqual(5_001)
    await b.releaseSlot(k, 'h1')
    await b.releaseSlot(k, 'h2')
    expect(await raw.exists(keys.slots(k))).toBe(0)
  })

  it('acquireSlot: an expired lease is free again and its key vanishes', async () => {
    const b = await backend()
    const k = key('slot')
    expect(await b.acquireSlot(k, 'crashed', 1, 40)).toBe(true)
    expect(await b.acquireSlot(k, 'other', 1, 40)).toBe(false)
    await sleep(80)
    expect(await raw.exists(keys.slots(k))).toBe(0)
    expect(await b.acquireSlot(k, 'other', 1, 60_000)).toBe(true)
    expect(await raw.zrange(keys.slots(k), '0', '-1')).toEqual(['other'])
  })

  it('acquireSlot: concurrent holders of two instances get exactly max slots', async () => {
    const [a, b] = [await backend(), await backend()]
    const k = key('slot')
    const replies = await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).acquireSlot(k, `h${i}`, 7, 60_000)),
    )
    expect(replies.filter(Boolean)).toHaveLength(7)
    expect(await raw.zcard(keys.slots(k))).toBe(7)
  })

  it('rate and slot keys of the same name are apart, and apart from putValue', async () => {
    const b = await backend()
    const k = key('same')
    expect(await b.takeRate(k, 1, 60_000)).toBe(0)
    expect(await b.acquireSlot(k, 'h', 1, 60_000)).toBe(true)
    await b.putValue(k, 'v', 60_000)
    expect(await b.takeRate(k, 1, 60_000)).toBeGreaterThan(0)
    expect(await b.acquireSlot(k, 'h2', 1, 60_000)).toBe(false)
    expect(await b.getValue(k)).toBe('v')
  })

  it('putValue overwrites a setIfAbsent claim with a fresh TTL', async () => {
    const b = await backend()
    const k = key('value')
    expect(await b.setIfAbsent(k, 'first', 60_000)).toBe(true)
    await b.putValue(k, 'second', 2_000)
    expect(await b.getValue(k)).toBe('second')
    const pttl = await raw.pttl(`${prefix}:value:${k}`)
    expect(pttl).toBeGreaterThan(1_000)
    expect(pttl).toBeLessThanOrEqual(2_000)
    expect(await b.setIfAbsent(k, 'third', 60_000)).toBe(false)
  })

  it('paused queues are one set per prefix, shared by instances, apart from other prefixes', async () => {
    const [a, b] = [await backend(), await backend()]
    const other = new RedisResultBackend({ url: REDIS_URL, keyPrefix: `${prefix}-other` })
    await other.connect()
    open.push(other)
    await a.setPaused('zeta', true)
    await a.setPaused('alpha', true)
    await a.setPaused('alpha', true)
    expect(await b.pausedQueues()).toEqual(['alpha', 'zeta'])
    expect(await other.pausedQueues()).toEqual([])
    await b.setPaused('zeta', false)
    await b.setPaused('never-paused', false)
    expect(await a.pausedQueues()).toEqual(['alpha'])
    expect(await raw.smembers(keys.paused)).toEqual(['alpha'])
    await a.setPaused('alpha', false)
    expect(await raw.exists(keys.paused)).toBe(0)
    await deletePrefix(`${prefix}-other`)
  })

  it('a key of the wrong type fails with ERR_CONNECTION and is left as it was', async () => {
    const b = await backend()
    const k = key('wrong')
    await raw.set(keys.rate(k), 'not a zset')
    await raw.set(keys.slots(k), 'not a zset')
    await expect(b.takeRate(k, 1, 1_000)).rejects.toMatchObject({ code: 'ERR_CONNECTION' })
    await expect(b.acquireSlot(k, 'h', 1, 1_000)).rejects.toMatchObject({ code: 'ERR_CONNECTION' })
    expect(await raw.get(keys.rate(k))).toBe('not a zset')
    expect(await raw.get(keys.slots(k))).toBe('not a zset')
  })

  it('checks its arguments, naming them', async () => {
    const b = await backend()
    const long = 'x'.repeat(MAX_FLOW_KEY_LENGTH + 1)
    await expect(b.takeRate('', 1, 1)).rejects.toThrow(/takeRate: key/)
    await expect(b.takeRate(long, 1, 1)).rejects.toThrow(/key must be at most 512/)
    expect(await b.takeRate('x'.repeat(MAX_FLOW_KEY_LENGTH), 1, 1)).toBeGreaterThanOrEqual(0)
    await expect(b.takeRate('k', 0, 1)).rejects.toThrow(/max/)
    await expect(b.takeRate('k', 1.5, 1)).rejects.toThrow(/max/)
    await expect(b.takeRate('k', 1, 0)).rejects.toThrow(/perMs/)
    await expect(b.takeRate('k', 1, Number.POSITIVE_INFINITY)).rejects.toThrow(/perMs/)
    await expect(b.acquireSlot('k', '', 1, 1)).rejects.toThrow(/holder/)
    await expect(b.acquireSlot('k', 'h', 0, 1)).rejects.toThrow(/max/)
    await expect(b.acquireSlot('k', 'h', 1, -1)).rejects.toThrow(/leaseMs/)
    await expect(b.releaseSlot(long, 'h')).rejects.toThrow(/key/)
    await expect(b.releaseSlot('k', 3 as unknown as string)).rejects.toThrow(/holder/)
    await expect(b.setPaused('', true)).rejects.toThrow(/queue/)
    await expect(b.setPaused(long, true)).rejects.toThrow(/queue must be at most 512/)
    await expect(b.putValue(long, 'v', 1)).rejects.toThrow(/key must be at most 512/)
    await expect(b.setPaused('q', 'yes' as unknown as boolean)).rejects.toThrow(/paused/)
    await expect(b.putValue('k', 1 as unknown as string, 1)).rejects.toThrow(/value/)
    await expect(b.putValue('k', 'v', Number.NaN)).rejects.toThrow(/ttlMs/)
    for (const p of [
      b.takeRate('', 1, 1),
      b.acquireSlot('k', '', 1, 1),
      b.setPaused('', true),
      b.putValue('k', 'v', 0),
    ]) {
      await expect(p).rejects.toBeInstanceOf(TypeError)
    }
  })

  it('a very long window or lease is cut to about 31 years, not refused', async () => {
    const b = await backend()
    const k = key('long')
    expect(await b.takeRate(k, 1, Number.MAX_VALUE)).toBe(0)
    const wait = await b.takeRate(k, 1, Number.MAX_VALUE)
    expect(wait).toBeGreaterThan(9e11)
    expect(wait).toBeLessThanOrEqual(1e12)
    expect(await b.acquireSlot(k, 'h', 1, Number.MAX_VALUE)).toBe(true)
    expect(await raw.pttl(keys.slots(k))).toBeGreaterThan(9e11)
  })

  it('rejects every method with ERR_CLOSED after close', async () => {
    const b = new RedisResultBackend({ url: REDIS_URL, keyPrefix: prefix })
    await b.connect()
    await b.close()
    const closed = { code: 'ERR_CLOSED' }
    await expect(b.takeRate('k', 1, 1_000)).rejects.toMatchObject(closed)
    await expect(b.acquireSlot('k', 'h', 1, 1_000)).rejects.toMatchObject(closed)
    await expect(b.releaseSlot('k', 'h')).rejects.toMatchObject(closed)
    await expect(b.setPaused('q', true)).rejects.toMatchObject(closed)
    await expect(b.pausedQueues()).rejects.toMatchObject(closed)
    await expect(b.putValue('k', 'v', 1_000)).rejects.toMatchObject(closed)
  })
})

/**
 * On a cluster every call is one command on one key, whatever slot it hashes to: keys spread
 * over the masters, and a key holding braces (its own hash tag) works too.
 */
describe('RedisResultBackend flow control on a cluster (3 masters on loopback)', () => {
  let cluster: LocalCluster | undefined
  beforeAll(async () => {
    cluster = await startLocalCluster()
  }, 60_000)
  afterAll(async () => {
    await cluster?.stop()
  })

  it('spreads flow keys over the masters and serves keys with braces', async () => {
    if (cluster === undefined) throw new Error('the local cluster did not start')
    const prefix = 'errand-flow-cl'
    const client = cluster.client()
    const b = new RedisResultBackend({ client, keyPrefix: prefix })
    await b.connect()
    const names = Array.from({ length: 12 }, (_, i) => `group-${i}`)
    for (const name of names) {
      expect(await b.takeRate(name, 1, 60_000)).toBe(0)
      expect(await b.acquireSlot(name, 'h', 1, 60_000)).toBe(true)
    }
    const owners = new Set<string>()
    for (const node of client.nodes('master')) {
      if ((await node.keys(`${prefix}:flow:*`)).length > 0) owners.add(String(node.options.port))
    }
    expect(owners.size).toBeGreaterThan(1)
    for (const odd of ['{tag}', 'a{b}c', '}{', '{']) {
      expect(await b.takeRate(odd, 1, 60_000)).toBe(0)
      expect(await b.takeRate(odd, 1, 60_000)).toBeGreaterThan(0)
      expect(await b.acquireSlot(odd, 'h', 1, 60_000)).toBe(true)
      await b.releaseSlot(odd, 'h')
      await b.putValue(odd, 'v', 60_000)
      expect(await b.getValue(odd)).toBe('v')
    }
    await b.setPaused('q{1}', true)
    expect(await b.pausedQueues()).toEqual(['q{1}'])
    await b.close()
  })
})
