import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { chain, chord, createApp, defineTask, group } from '../src/index.js'

const add = defineTask({
  name: 'smoke.add',
  input: z.object({ a: z.number(), b: z.number() }),
  handler: ({ a, b }) => a + b,
})
const double = defineTask({ name: 'smoke.double', input: z.number(), handler: (n) => n * 2 })
const sum = defineTask({
  name: 'smoke.sum',
  input: z.array(z.number()),
  handler: (xs) => xs.reduce((s, x) => s + x, 0),
})

describe('smoke', () => {
  it('sends, runs and returns', async () => {
    const app = createApp({ broker: 'memory://smoke', backend: 'memory://smoke', tasks: [add, double, sum] })
    await app.worker({ concurrency: 4 }).start()
    const r = await app.send(add.s({ a: 1, b: 2 }))
    expect(await r.get({ timeoutMs: 2000 })).toBe(3)
    const c = await app.send(chain(add.s({ a: 1, b: 2 }), double.s(), double.s()))
    expect(await c.get({ timeoutMs: 2000 })).toBe(12)
    const g = await app.send(group(add.s({ a: 1, b: 1 }), add.s({ a: 2, b: 2 })))
    expect(await g.get({ timeoutMs: 2000 })).toEqual([2, 4])
    const ch = await app.send(chord([add.s({ a: 1, b: 1 }), add.s({ a: 2, b: 2 })], sum.s()))
    expect(await ch.get({ timeoutMs: 2000 })).toBe(6)
    await app.close()
  })
})
