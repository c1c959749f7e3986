// The two optional Delivery hooks a store can offer: `lost` (the store took the message back while
// the handler ran) and `ackWithRecord` (outcome and ack in one step). A broker wrapper adds them
// to the memory store's deliveries, so core's use of them is pinned without a real store.
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import {
  type Broker,
  createApp,
  type Delivery,
  DeliveryLostError,
  defineTask,
  MemoryBroker,
  MemoryResultBackend,
  type SettleOnceDelivery,
  silentLogger,
  type TaskRecord,
} from '../src/index.js'

/** A memory broker whose deliveries get `extra(d)` mixed in. */
function wrapped(name: string, extra: (d: Delivery) => Partial<Delivery>): Broker {
  const inner = new MemoryBroker({ name })
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'consume') {
        return (queue: string, onDelivery: (d: Delivery) => void, options: never) =>
          target.consume(queue, (d) => onDelivery(Object.assign(Object.create(d), d, extra(d))), options)
      }
      const value = Reflect.get(target, prop, receiver)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}

describe('optional delivery hooks', () => {
  it('lost: the handler sees ctx.signal abort with ERR_LOST and the worker neither stores nor settles', async () => {
    const store = `hooks-${Math.random().toString(36).slice(2)}`
    const losers = new Map<string, AbortController>()
    let acks = 0
    const broker = wrapped(store, (d) => {
      const c = new AbortController()
      losers.set(d.messageId, c)
      return {
        lost: c.signal,
        ack: async () => {
          acks++
          await d.ack()
        },
      }
    })
    let seen: unknown
    let started: () => void = () => {}
    const running = new Promise<void>((r) => {
      started = r
    })
    const slow = defineTask({
      name: 'hooks.slow',
      queue: store,
      input: z.null(),
      handler: async (_, ctx) => {
        started()
        await new Promise((_, reject) =>
          ctx.signal.addEventListener('abort', () => {
            seen = ctx.signal.reason
            reject(ctx.signal.reason)
          }),
        )
      },
    })
    const backend = new MemoryResultBackend({ name: store })
    const app = createApp({ broker, backend, tasks: [slow], logger: silentLogger })
    try {
      await app.worker().start()
      const sent = await app.send(slow.s(null))
      await running
      for (const c of losers.values()) c.abort(new Error('lease lost: reclaimed by another consumer'))
      await expect.poll(() => seen, { timeout: 2000 }).toBeInstanceOf(Error)
      expect((seen as Error).message).toContain('lease lost')
      // Nothing settled, nothing stored beyond STARTED, after the abort had time to land.
      await new Promise((r) => setTimeout(r, 100))
      expect(acks).toBe(0)
      expect((await app.result(sent.id).info())?.state).toBe('STARTED')
    } finally {
      await app.close()
    }
  })

  it("lost on the store's own delivery (markLost): ctx.signal aborts with ERR_LOST, nothing stored or settled", async () => {
    const store = `hooks-${Math.random().toString(36).slice(2)}`
    const inner = new MemoryBroker({ name: store })
    const held: SettleOnceDelivery[] = []
    const broker = new Proxy(inner, {
      get(target, prop, receiver) {
        if (prop === 'consume') {
          return (queue: string, onDelivery: (d: Delivery) => void, options: never) =>
            target.consume(
              queue,
              (d) => {
                held.push(d as SettleOnceDelivery)
                onDelivery(d)
              },
              options,
            )
        }
        const value = Reflect.get(target, prop, receiver)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    let seen: unknown
    let started: () => void = () => {}
    const running = new Promise<void>((r) => {
      started = r
    })
    const slow = defineTask({
      name: 'hooks.slow2',
      queue: store,
      input: z.null(),
      handler: async (_, ctx) => {
        started()
        await new Promise((_, reject) =>
          ctx.signal.addEventListener('abort', () => {
            seen = ctx.signal.reason
            reject(ctx.signal.reason)
          }),
        )
      },
    })
    // A handler that ignores its signal does not hold the slot: the run ends when the loss lands.
    let deaf = 0
    const ignoring = defineTask({
      name: 'hooks.deaf',
      queue: store,
      input: z.null(),
      handler: async () => {
        deaf++
        await new Promise(() => {})
      },
    })
    const backend = new MemoryResultBackend({ name: store })
    const app = createApp({ broker, backend, tasks: [slow, ignoring], logger: silentLogger })
    try {
      const worker = await app.worker({ concurrency: 1 }).start()
      const sent = await app.send(slow.s(null))
      await running
      const reason = new DeliveryLostError('lease lost: reclaimed by another consumer')
      expect(held[0]?.markLost(reason)).toBe(true)
      await expect.poll(() => seen, { timeout: 2000 }).toBe(reason)
      await new Promise((r) => setTimeout(r, 100))
      expect(held[0]?.state).toBe('lost')
      expect((await app.result(sent.id).info())?.state).toBe('STARTED')
      await app.send(ignoring.s(null))
      await expect.poll(() => deaf, { timeout: 2000 }).toBe(1)
      held[1]?.markLost(new DeliveryLostError('gone'))
      await expect.poll(() => worker.activeCount, { timeout: 2000 }).toBe(0)
    } finally {
      await app.close()
    }
  })

  it('ackWithRecord: one call stores the outcome and acks; undefined falls back to store, then ack', async () => {
    for (const fused of [true, false]) {
      const store = `hooks-${Math.random().toString(36).slice(2)}`
      const calls: string[] = []
      const broker = wrapped(store, (d) => ({
        ack: async () => {
          calls.push('ack')
          await d.ack()
        },
        ackWithRecord: async (backend, record: TaskRecord, options) => {
          calls.push(`fused:${record.state}`)
          if (!fused) return undefined
          const state = await backend.setState(record, options)
          await d.ack()
          return state
        },
      }))
      const echo = defineTask({ name: 'hooks.echo', queue: store, input: z.number(), handler: (n) => n * 2 })
      const app = createApp({
        broker,
        backend: new MemoryResultBackend({ name: store }),
        tasks: [echo],
        logger: silentLogger,
      })
      try {
        await app.worker().start()
        expect(await (await app.send(echo.s(21))).get({ timeoutMs: 5000 })).toBe(42)
        expect(calls).toEqual(fused ? ['fused:SUCCESS'] : ['fused:SUCCESS', 'ack'])
      } finally {
        await app.close()
      }
    }
  })
})
