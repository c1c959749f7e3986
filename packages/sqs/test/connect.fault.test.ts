import { type CuttableProxy, startTcpProxy } from '@errand/conformance'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { SqsBroker } from '../src/index.js'
import { type SqsTestEndpoint, startSqs, testOptions, uniqueQueue } from './fauxqs.js'

const enc = new TextEncoder()
const dec = new TextDecoder()

let sqs: SqsTestEndpoint
let proxy: CuttableProxy
beforeAll(async () => {
  sqs = await startSqs()
  proxy = await startTcpProxy(sqs.endpoint)
})
afterAll(async () => {
  await proxy?.close()
  await sqs?.stop()
})

/** Bodies received so far; `arrived(body)` resolves when that body has been delivered. */
function arrivals() {
  const seen = new Set<string>()
  const waiting = new Map<string, () => void>()
  return {
    add(body: string) {
      seen.add(body)
      waiting.get(body)?.()
    },
    arrived(body: string, timeoutMs: number) {
      if (seen.has(body)) return Promise.resolve()
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`"${body}" not delivered in ${timeoutMs} ms`)),
          timeoutMs,
        )
        waiting.set(body, () => {
          clearTimeout(timer)
          resolve()
        })
      })
    },
  }
}

it('fast first connect keeps the patience of a connection that once worked: cut, restored, work resumes', async () => {
  const q = uniqueQueue('conn-fault')
  const broker = new SqsBroker(testOptions(proxy.endpoint, { leaseMs: 3_000, retryTimeoutMs: 60_000 }))
  try {
    await broker.connect()
    const got = arrivals()
    await broker.consume(
      q,
      (d) => {
        got.add(dec.decode(d.body))
        void d.ack().catch(() => undefined) // an ack cut by the outage: the message comes back
      },
      { prefetch: 5, leaseMs: 3_000 },
    )
    await broker.publish(q, [{ body: enc.encode('before') }])
    await got.arrived('before', 10_000)

    await proxy.cut()
    let settled = false
    const during = broker.publish(q, [{ body: enc.encode('during') }]).finally(() => {
      settled = true
    })
    // The outage itself is what is tested: it lasts this long, and the publish waits it out.
    await new Promise((r) => setTimeout(r, 2_000))
    expect(settled).toBe(false)
    await proxy.restore()
    await during
    await got.arrived('during', 30_000)
    await broker.publish(q, [{ body: enc.encode('after') }])
    await got.arrived('after', 30_000)
  } finally {
    await proxy.restore()
    await broker.close()
  }
}, 60_000)
