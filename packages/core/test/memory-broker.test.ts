import { afterEach, describe, expect, it } from 'vitest'
import type { Delivery } from '../src/broker.js'
import { MemoryBroker, MemoryStore } from '../src/memory/index.js'

const encode = (text: string) => new TextEncoder().encode(text)
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

function inbox() {
  const got: Delivery[] = []
  const waiters: (() => void)[] = []
  return {
    got,
    handler: (d: Delivery) => {
      got.push(d)
      for (const w of waiters.splice(0)) w()
    },
    async next(index: number): Promise<Delivery> {
      while (got.length <= index) await new Promise<void>((resolve) => waiters.push(resolve))
      return got[index]!
    },
  }
}

const open: MemoryBroker[] = []
function broker(
  store: MemoryStore,
  options: Omit<ConstructorParameters<typeof MemoryBroker>[0] & object, 'store'> = {},
) {
  const b = new MemoryBroker({ store, ...options })
  open.push(b)
  return b
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()))
})

describe('MemoryBroker', () => {
  it('delivers on a later turn, never inside publish or ack', async () => {
    const b = broker(new MemoryStore())
    let inPublish = false
    const seen: boolean[] = []
    const box = inbox()
    await b.consume(
      'q',
      (d) => {
        seen.push(inPublish)
        box.handler(d)
      },
      { prefetch: 1 },
    )
    inPublish = true
    const publishing = b.publish('q', [{ body: encode('1') }, { body: encode('2') }])
    inPublish = false
    await publishing
    const first = await box.next(0)
    inPublish = true
    const acking = first.ack()
    inPublish = false
    await acking
    await box.next(1)
    expect(seen).toEqual([false, false])
  })

  it('shares queues between brokers on one store and keeps stores apart', async () => {
    const store = new MemoryStore()
    const a = broker(store)
    const b = broker(store)
    const other = broker(new MemoryStore())
    await a.publish('q', [{ body: encode('x') }])
    expect((await b.stats('q')).ready).toBe(1)
    expect((await other.stats('q')).ready).toBe(0)
  })

  it('is FIFO within a priority', async () => {
    const b = broker(new MemoryStore())
    await b.publish(
      'q',
      [0, 1, 2, 3, 4, 5].map((i) => ({ body: encode(String(i)), priority: i % 2 === 0 ? 0 : 5 })),
    )
    const box = inbox()
    await b.consume('q', box.handler, { prefetch: 1 })
    const order: string[] = []
    for (let i = 0; i < 6; i++) {
      const d = await box.next(i)
      order.push(decode(d.body))
      await d.ack()
    }
    expect(order).toEqual(['1', '3', '5', '0', '2', '4'])
  })

  it('hands out copies: a handler mutating its body cannot change the stored bytes', async () => {
    const b = broker(new MemoryStore())
    const body = encode('abc')
    await b.publish('q', [{ body }])
    body[0] = 0x7a
    const box = inbox()
    await b.consume('q', box.handler, { prefetch: 1 })
    const d = await box.next(0)
    expect(decode(d.body)).toBe('abc')
    d.body[1] = 0x7a
    await d.deadLetter({ reason: 'rejected' })
    expect(decode((await b.listDeadLetters('q'))[0]!.body)).toBe('abc')
  })

  it('requeued dead letters keep their id and delivery count', async () => {
    const b = broker(new MemoryStore())
    await b.publish('q', [{ body: encode('x') }])
    const box = inbox()
    await b.consume('q', box.handler, { prefetch: 1 })
    const first = await box.next(0)
    await first.deadLetter({ reason: 'exhausted' })
    expect(await b.requeueDeadLetters('q', [first.messageId])).toBe(1)
    const again = await box.next(1)
    expect(again.messageId).toBe(first.messageId)
    expect(again.attempt).toBe(2)
    await again.ack()
  })

  it('rejects malformed messages with TypeError and wrong options with ERR_INVALID_OPTION naming them', async () => {
    const b = broker(new MemoryStore())
    await expect(b.publish('', [])).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'queue' })
    await expect(b.publish('q', [{ body: 'text' as never }])).rejects.toBeInstanceOf(TypeError)
    await expect(b.publish('q', [{ body: encode('x'), delayMs: -1 }])).rejects.toBeInstanceOf(TypeError)
    await expect(b.publish('q', [{ body: encode('x'), priority: 1.5 }])).rejects.toBeInstanceOf(TypeError)
    await expect(b.consume('q', () => {}, { prefetch: 0 })).rejects.toMatchObject({ option: 'prefetch' })
    await expect(b.consume('q', () => {}, { prefetch: 1, leaseMs: -5 })).rejects.toMatchObject({
      option: 'leaseMs',
    })
    await expect(b.listDeadLetters('q', { limit: -1 })).rejects.toMatchObject({ option: 'limit' })
    // Nothing of a refused batch is stored.
    await expect(
      b.publish('q', [{ body: encode('ok') }, { body: encode('x'), priority: 10 }]),
    ).rejects.toMatchObject({ code: 'ERR_NOT_SUPPORTED' })
    expect((await b.stats('q')).ready).toBe(0)
  })

  it('rejects settling after close with ERR_CLOSED, and the message is already back', async () => {
    const store = new MemoryStore()
    const a = broker(store)
    await a.publish('q', [{ body: encode('x') }])
    const box = inbox()
    await a.consume('q', box.handler, { prefetch: 1 })
    const d = await box.next(0)
    await a.close()
    await expect(d.ack()).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    expect((await broker(store).stats('q')).ready).toBe(1)
  })

  it('without leases, deliveries have no extend and are held until settled', async () => {
    const b = broker(new MemoryStore(), { capabilities: { leases: false } })
    await b.publish('q', [{ body: encode('x') }])
    const box = inbox()
    await b.consume('q', box.handler, { prefetch: 1, leaseMs: 1 })
    const d = await box.next(0)
    expect(d.extend).toBeUndefined()
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect((await b.stats('q')).inFlight).toBe(1)
    await d.ack()
  })

  it('keeps the process alive only while it has an active consumer', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    const base = timers()
    const b = broker(new MemoryStore())
    // A delayed message alone never holds the process open.
    await b.publish('q', [{ body: encode('x'), delayMs: 60_000 }])
    expect(timers()).toBe(base)
    const c1 = await b.consume('q', () => {}, { prefetch: 1 })
    const c2 = await b.consume('q', () => {}, { prefetch: 1 })
    expect(timers()).toBe(base + 1)
    await c1.cancel()
    expect(timers()).toBe(base + 1)
    await c2.cancel()
    expect(timers()).toBe(base)
    await b.consume('q', () => {}, { prefetch: 1 })
    expect(timers()).toBe(base + 1)
    await b.close()
    expect(timers()).toBe(base)
  })
})
