import { type CuttableProxy, startTcpProxy as startProxy } from '@errand/conformance'
import type { Delivery } from '@errand/core'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { SqsBroker } from '../src/index.js'
import { type SqsTestEndpoint, startSqs, testOptions, uniqueQueue } from './fauxqs.js'

const enc = new TextEncoder()
const dec = new TextDecoder()

let sqs: SqsTestEndpoint
let proxy: CuttableProxy
beforeAll(async () => {
  sqs = await startSqs()
  proxy = await startProxy(sqs.endpoint)
})
afterAll(async () => {
  await proxy?.close()
  await sqs?.stop()
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

it('nothing is lost when the endpoint goes away for seconds and comes back; the consumer resumes', async () => {
  const q = uniqueQueue('fault')
  const total = 400
  // Through the proxy: a short lease, so that messages taken by polls cut mid-way come back soon.
  const broker = new SqsBroker(testOptions(proxy.endpoint, { leaseMs: 5_000, retryTimeoutMs: 60_000 }))
  const direct = new SqsBroker(testOptions(sqs.endpoint))
  await broker.connect()
  await direct.connect()
  try {
    const acked = new Set<string>()
    let deliveries = 0
    let allAcked!: () => void
    const done = new Promise<void>((r) => {
      allAcked = r
    })
    const onDelivery = (d: Delivery) => {
      deliveries++
      const body = dec.decode(d.body)
      d.ack().then(
        () => {
          acked.add(body)
          if (acked.size === total) allAcked()
        },
        () => undefined, // the ack failed during the outage: the message comes back after its lease
      )
    }
    await broker.consume(q, onDelivery, { prefetch: 20, leaseMs: 5_000 })
    let cutAt = 0
    let restoredAt = 0
    const outage = (async () => {
      await sleep(800)
      cutAt = Date.now()
      await proxy.cut()
      await sleep(4_000)
      await proxy.restore()
      restoredAt = Date.now()
    })()
    // Publish steadily before, during and after the outage: publishes retry until it is over.
    for (let i = 0; i < total; i += 10) {
      const batch = Array.from({ length: 10 }, (_, j) => ({ body: enc.encode(`m${i + j}`) }))
      await broker.publish(q, batch)
      await sleep(25)
    }
    await outage
    expect(restoredAt - cutAt).toBeGreaterThanOrEqual(4_000)
    await Promise.race([
      done,
      sleep(45_000).then(() => {
        throw new Error(`only ${acked.size}/${total} acked after the outage (${deliveries} deliveries)`)
      }),
    ])
    expect(acked.size).toBe(total)
    // The consumer keeps receiving after the outage.
    const before = acked.size
    await broker.publish(q, [{ body: enc.encode('after') }])
    while (!acked.has('after')) await sleep(50)
    expect(acked.size).toBe(before + 1)
    // Nothing left behind: messages taken by cut polls came back and were acked too.
    for (;;) {
      const stats = await direct.stats(q)
      if (stats.ready === 0 && stats.inFlight === 0) break
      await sleep(250)
    }
  } finally {
    await proxy.restore()
    await broker.close()
    await direct.purge(q)
    await direct.close()
  }
}, 90_000)
