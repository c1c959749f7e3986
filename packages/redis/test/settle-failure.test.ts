import { startTcpProxy } from '@errand/conformance'
import { type Delivery, silentLogger } from '@errand/core'
import { afterAll, describe, expect, it } from 'vitest'
import { RedisBroker } from '../src/index.js'
import { deletePrefix, REDIS_URL, redisAvailable, str, text, uniquePrefix, until } from './helpers.js'

const available = await redisAvailable()

// Core's rule (LeasedDelivery): a settle that failed leaves the delivery unsettled and stops it
// counting against the prefetch at once; the lease (or close) brings the message back.
describe.runIf(available)('a settle that failed on Redis', () => {
  const prefix = uniquePrefix('settle-fail')
  afterAll(() => deletePrefix(prefix))

  it('frees its prefetch slot at once, and close() gives the message back at once', async () => {
    const proxy = await startTcpProxy(REDIS_URL)
    const url = new URL(REDIS_URL)
    url.hostname = '127.0.0.1'
    url.port = String(proxy.port)
    const healthy = new RedisBroker({ url: REDIS_URL, keyPrefix: prefix })
    // maxRetriesPerRequest 0: a command fails as soon as its connection drops.
    const cut = new RedisBroker({
      url: url.toString(),
      keyPrefix: prefix,
      redisOptions: { maxRetriesPerRequest: 0 },
      logger: silentLogger,
    })
    try {
      await healthy.connect()
      await cut.connect()
      const q = 'settle-fail'
      await healthy.publish(q, [{ body: text('first') }, { body: text('second') }])
      const held: Delivery[] = []
      // A lease far longer than the test: only the failure policy can free the slot.
      await cut.consume(q, (d) => held.push(d), { prefetch: 1, leaseMs: 600_000 })
      await until(() => held.length === 1)
      await proxy.cut()
      const during = await held[0]!.ack().then(
        () => 'resolved',
        (err: unknown) => `rejected ${String(err)}`,
      )
      await proxy.restore()
      expect(during, 'an ack while Redis was unreachable must reject').toMatch(/^rejected/)
      await until(() => held.length === 2, 20_000, 'the next message in the freed slot')
      expect(held.map((d) => str(d.body))).toEqual(['first', 'second'])
      expect(await healthy.stats(q)).toMatchObject({ ready: 0, inFlight: 2 })
      // The failed-settle delivery is given back at close like the held one (not after its lease).
      await cut.close()
      expect(await healthy.stats(q)).toMatchObject({ ready: 2, inFlight: 0 })
      await expect(held[0]!.ack()).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    } finally {
      await Promise.all([cut.close(), healthy.close()])
      await proxy.close()
    }
  }, 40_000)
})
