import { type CuttableProxy, startTcpProxy } from '@errand/conformance'
import type { Delivery } from '@errand/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SqsBroker } from '../src/index.js'
import { type SqsTestEndpoint, startSqs, testOptions, uniqueQueue } from './fauxqs.js'

const enc = new TextEncoder()
const dec = new TextDecoder()
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

let sqs: SqsTestEndpoint
let proxy: CuttableProxy
const brokers: SqsBroker[] = []
beforeAll(async () => {
  sqs = await startSqs()
  proxy = await startTcpProxy(sqs.endpoint)
})
afterAll(async () => {
  await Promise.allSettled(brokers.map((b) => b.close()))
  await proxy?.close()
  await sqs?.stop()
})

function open(endpoint: string): SqsBroker {
  const b = new SqsBroker(testOptions(endpoint, { retryTimeoutMs: 2_000 }))
  brokers.push(b)
  return b
}

/** Consume `q` on `broker`, acking; resolves with the bodies seen and when each came. */
async function collect(broker: SqsBroker, q: string) {
  const seen: { body: string; at: number }[] = []
  const consumer = await broker.consume(
    q,
    (d: Delivery) => {
      seen.push({ body: dec.decode(d.body), at: Date.now() })
      void d.ack().catch(() => undefined)
    },
    { prefetch: 10, leaseMs: 5_000 },
  )
  return { seen, consumer }
}

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (!check() && Date.now() < end) await sleep(50)
  return check()
}

describe('sqs: delayed messages through the delay queue', () => {
  it('a cut while the forwarder holds a due message: it still arrives, soon after the cut', async () => {
    const q = uniqueQueue('fwd-cut')
    const direct = open(sqs.endpoint)
    const viaProxy = open(proxy.endpoint)
    const { seen } = await collect(viaProxy, q)
    await direct.publish(q, [{ body: enc.encode('held'), delayMs: 1_500 }])
    // The forwarder's poll takes it at once and holds it in a timer until due; cut across that.
    await sleep(400)
    await proxy.cut()
    await sleep(2_500)
    await proxy.restore()
    const restoredAt = Date.now()
    expect(await until(() => seen.length > 0, 30_000)).toBe(true)
    expect(seen[0]?.body).toBe('held')
    expect((seen[0]?.at ?? 0) - restoredAt).toBeLessThan(15_000)
  }, 60_000)

  it('a forwarder that dies holding a due message (never closes): another consumer forwards it', async () => {
    const q = uniqueQueue('fwd-kill')
    const direct = open(sqs.endpoint)
    // Its own proxy, cut for good: the dead process's polls never answer, its timers do nothing.
    const own = await startTcpProxy(sqs.endpoint)
    const doomed = new SqsBroker(testOptions(own.endpoint, { retryTimeoutMs: 2_000 }))
    brokers.push(doomed)
    await collect(doomed, q)
    await direct.publish(q, [{ body: enc.encode('orphan'), delayMs: 1_500 }])
    await sleep(400)
    // As a SIGKILL looks from the server: the connections go, nothing is given back.
    await own.close()
    const killedAt = Date.now()
    const other = open(sqs.endpoint)
    const { seen } = await collect(other, q)
    expect(await until(() => seen.length > 0, 30_000)).toBe(true)
    expect(seen[0]?.body).toBe('orphan')
    expect((seen[0]?.at ?? 0) - killedAt).toBeLessThan(15_000)
  }, 60_000)
})
