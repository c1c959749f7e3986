import { describe, expectTypeOf, it } from 'vitest'
import { z } from 'zod'
import {
  type AsyncResult,
  chain,
  chord,
  createApp,
  defineTask,
  group,
  type Outcome,
  type Task,
} from '../src/index.js'

const fetchImage = defineTask({
  name: 't.fetch',
  input: z.object({ url: z.string() }),
  output: z.object({ bytes: z.number() }),
  handler: () => ({ bytes: 1 }),
})
const resize = defineTask({
  name: 't.resize',
  input: z.object({ bytes: z.number() }),
  handler: ({ bytes }) => ({ width: bytes }),
})
const upload = defineTask({
  name: 't.upload',
  input: z.object({ width: z.number() }),
  handler: () => 'https://cdn/x',
})
const count = defineTask({ name: 't.count', input: z.number(), handler: (n) => n })
const total = defineTask({ name: 't.total', input: z.array(z.number()), handler: (xs) => xs.length })
const pair = defineTask({
  name: 't.pair',
  input: z.tuple([z.number(), z.string()]),
  handler: ([n, s]) => `${n}${s}`,
})
const label = defineTask({ name: 't.label', input: z.string(), handler: (s) => s })
const outcomes = defineTask({
  name: 't.outcomes',
  input: z.array(z.object({ ok: z.boolean() })),
  handler: (xs) => xs.length,
})
const app = createApp({ broker: 'memory://types', tasks: [] })

describe('typed canvas', () => {
  it('infers task input and output', () => {
    expectTypeOf(fetchImage).toEqualTypeOf<Task<{ url: string }, { bytes: number }>>()
    expectTypeOf(resize).toEqualTypeOf<Task<{ bytes: number }, { width: number }>>()
    expectTypeOf(resize.s()).toMatchTypeOf<{ readonly task: string }>()
  })

  it('accepts a chain whose steps fit and types its result', async () => {
    const c = chain(fetchImage.s({ url: 'u' }), resize.s(), upload.s())
    const r = await app.send(c)
    expectTypeOf(r).toEqualTypeOf<AsyncResult<string>>()
  })

  it('accepts .si() anywhere after the first step', () => {
    const c = chain(fetchImage.s({ url: 'u' }), count.si(3), count.s())
    expectTypeOf(app.send(c)).resolves.toEqualTypeOf<AsyncResult<number>>()
  })

  it('rejects a chain whose next step cannot take the previous output', () => {
    // @ts-expect-error -- upload needs { width }, fetchImage gives { bytes }
    chain(fetchImage.s({ url: 'u' }), upload.s())
    // @ts-expect-error -- count takes a number, resize gives an object
    chain(fetchImage.s({ url: 'u' }), resize.s(), count.s())
  })

  it('rejects a bound .s(input) after the first step', () => {
    // @ts-expect-error -- bound input in the middle of a chain: use .s() or .si()
    chain(fetchImage.s({ url: 'u' }), resize.s({ bytes: 1 }))
  })

  it('rejects sending a canvas whose input is not bound', () => {
    // @ts-expect-error -- resize.s() waits for an input
    void app.send(resize.s())
    // @ts-expect-error -- a chain starting with an open signature cannot be sent
    void app.send(chain(resize.s(), upload.s()))
  })

  it('types a group as the tuple of member outputs', async () => {
    const r = await app.send(group(count.s(1), label.s('a')))
    expectTypeOf(r).toEqualTypeOf<AsyncResult<[number, string]>>()
  })

  it('accepts a chord whose callback takes the group outputs', async () => {
    const r = await app.send(chord([count.s(1), count.s(2)], total.s()))
    expectTypeOf(r).toEqualTypeOf<AsyncResult<number>>()
    const t = await app.send(chord(group(count.s(1), label.s('x')), pair.s()))
    expectTypeOf(t).toEqualTypeOf<AsyncResult<string>>()
  })

  it('rejects a chord whose callback cannot take the group outputs', () => {
    // @ts-expect-error -- total takes number[], the header gives [number, string]
    chord([count.s(1), label.s('a')], total.s())
    // @ts-expect-error -- label takes a string, not an array
    chord([count.s(1)], label.s())
  })

  it('types an allowFailures chord callback input as outcomes', () => {
    chord([count.s(1), count.s(2)], outcomes.s(), { allowFailures: true })
    // @ts-expect-error -- with allowFailures the callback gets outcomes, not numbers
    chord([count.s(1), count.s(2)], total.s(), { allowFailures: true })
    expectTypeOf<Outcome<number>>().toMatchTypeOf<{ ok: boolean }>()
  })

  it('nests: a chain through a group into a chord callback', async () => {
    const c = chain(count.s(1), group(count.s(), count.s()), total.s())
    expectTypeOf(app.send(c)).resolves.toEqualTypeOf<AsyncResult<number>>()
    // @ts-expect-error -- label cannot take the group's [number, number]
    chain(count.s(1), group(count.s(), count.s()), label.s())
  })
})
