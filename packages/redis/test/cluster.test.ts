import { runAppConformance, runBrokerConformance, runResultBackendConformance } from '@errand/conformance'
import type { Delivery } from '@errand/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RedisBroker, RedisResultBackend } from '../src/index.js'
import { type LocalCluster, startLocalCluster } from './local-cluster.js'

// A 3-master cluster started here from the redis-server binary (no persistence), stopped in
// afterAll even when a test fails. Each adapter instance borrows its own Cluster client.
let cluster: LocalCluster | undefined

describe('redis cluster (3 masters on loopback)', () => {
  beforeAll(async () => {
    cluster = await startLocalCluster()
  }, 60_000)
  afterAll(async () => {
    await cluster?.stop()
  })

  const on = (): LocalCluster => {
    if (cluster === undefined) throw new Error('the local cluster did not start')
    return cluster
  }

  it('spreads queues over the masters: queues of different names land on different slots', async () => {
    const client = on().client()
    const broker = new RedisBroker({ client, keyPrefix: 'errand-cl' })
    await broker.connect()
    const queues = Array.from({ length: 12 }, (_, i) => `spread-${i}`)
    for (const q of queues) await broker.publish(q, [{ body: new Uint8Array([1]) }])
    const owners = new Set<string>()
    for (const node of client.nodes('master')) {
      const keys = await node.keys('errand-cl:*')
      if (keys.length > 0) owners.add(`${node.options.port}`)
    }
    expect(owners.size).toBeGreaterThan(1)
    for (const q of queues) expect(await broker.purge(q)).toBe(1)
    await broker.close()
  })

  it('does not fuse a record write with an ack: record keys hash to other slots than the queue', async () => {
    const broker = new RedisBroker({ client: on().client(), keyPrefix: 'errand-cl' })
    const backend = new RedisResultBackend({ client: on().client(), keyPrefix: 'errand-cl' })
    await broker.connect()
    await backend.connect()
    const got: Delivery[] = []
    await broker.consume('fused', (d) => got.push(d), { prefetch: 1 })
    await broker.publish('fused', [{ body: new Uint8Array([1]) }])
    await expect.poll(() => got.length).toBe(1)
    const record = { id: 'cl-fused', state: 'SUCCESS' as const }
    expect(await got[0]!.ackWithRecord!(backend, record, { ttlMs: 60_000 })).toBeUndefined()
    expect(await backend.getState('cl-fused')).toBeUndefined()
    expect((await broker.stats('fused')).inFlight).toBe(1)
    await got[0]!.ack()
    expect((await broker.stats('fused')).inFlight).toBe(0)
    await broker.close()
    await backend.close()
  })

  runBrokerConformance({
    name: 'redis-cluster',
    factory: () => new RedisBroker({ client: on().client(), keyPrefix: 'errand-cl' }),
    stressMessages: 10_000,
  })
  runResultBackendConformance({
    name: 'redis-cluster',
    factory: () => new RedisResultBackend({ client: on().client(), keyPrefix: 'errand-cl' }),
  })
  runAppConformance({
    name: 'redis-cluster broker + backend',
    broker: () => new RedisBroker({ client: on().client(), keyPrefix: 'errand-cl' }),
    backend: () => new RedisResultBackend({ client: on().client(), keyPrefix: 'errand-cl' }),
  })
})
