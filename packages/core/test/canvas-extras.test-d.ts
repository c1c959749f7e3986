import { describe, expectTypeOf, it } from 'vitest'
import { z } from 'zod'
import { type AsyncResult, chain, chunks, createApp, defineTask, group, map, starmap } from '../src/index.js'

const add = defineTask({
  name: 'tx.add',
  input: z.object({ a: z.number(), b: z.number() }),
  output: z.number(),
  handler: ({ a, b }) => a + b,
})
const add3 = defineTask({
  name: 'tx.add3',
  input: z.object({ a: z.number(), b: z.number(), c: z.number().optional() }),
  output: z.number(),
  handler: ({ a, b, c }) => a + b + (c ?? 0),
})
const scale = defineTask({
  name: 'tx.scale',
  input: z.object({ width: z.number(), height: z.number(), factor: z.number() }),
  handler: ({ width, height, factor }) => ({ width: width * factor, height: height * factor }),
})
const measure = defineTask({
  name: 'tx.measure',
  input: z.string(),
  handler: () => ({ width: 1, height: 2 }),
})
const count = defineTask({ name: 'tx.count', input: z.number(), handler: (n) => n })
const label = defineTask({ name: 'tx.label', input: z.string(), handler: (s) => s })
const urls = defineTask({ name: 'tx.urls', input: z.string(), handler: () => ['a', 'b'] })
const pairs = defineTask({ name: 'tx.pairs', input: z.number(), handler: (): [number, number][] => [[1, 2]] })
const fetchPage = defineTask({ name: 'tx.fetch', input: z.string(), handler: (u) => ({ url: u, size: 1 }) })
const app = createApp({ broker: 'memory://types-extras', tasks: [] })

describe('partial signatures', () => {
  it('fills the field named by `into` with the previous output', () => {
    const c = chain(add.s({ a: 2, b: 2 }), add.partial({ a: 5 }, 'b'))
    expectTypeOf(app.send(c)).resolves.toEqualTypeOf<AsyncResult<number>>()
    const machinery = chain(add3.s({ a: 2, b: 2 }), add3.partial({ a: 5, b: 6 }, 'c'))
    expectTypeOf(app.send(machinery)).resolves.toEqualTypeOf<AsyncResult<number>>()
  })

  it('fills the open fields from an object output', () => {
    const c = chain(measure.s('img'), scale.partial({ factor: 2 }))
    expectTypeOf(app.send(c)).resolves.toEqualTypeOf<AsyncResult<{ width: number; height: number }>>()
    expectTypeOf(scale.partial({ factor: 2 })).toMatchTypeOf<{ readonly task: string }>()
  })

  it('rejects a previous output that cannot fill the open fields', () => {
    // @ts-expect-error -- measure gives { width, height }; add.partial({ a }) needs { b: number }
    chain(measure.s('img'), add.partial({ a: 5 }))
    // @ts-expect-error -- label gives a string; field b of add is a number
    chain(label.s('x'), add.partial({ a: 5 }, 'b'))
    // @ts-expect-error -- count gives a number; scale's open fields are an object
    chain(count.s(1), scale.partial({ factor: 2 }))
  })

  it('rejects bound fields the input does not have, wrong types, and bad targets', () => {
    // @ts-expect-error -- c is not a field of add's input
    add.partial({ c: 1 })
    // @ts-expect-error -- a is a number
    add.partial({ a: 'five' })
    // @ts-expect-error -- b is bound and also the field the previous output fills
    add.partial({ a: 1, b: 2 }, 'b')
    // @ts-expect-error -- z is not a field of add's input
    add.partial({ a: 1 }, 'z')
    // @ts-expect-error -- count's input is a number, not an object
    count.partial(1)
  })

  it('cannot be sent on its own: it waits for a previous step', () => {
    // @ts-expect-error -- a partial signature is not ready to send
    void app.send(add.partial({ a: 1 }))
  })
})

describe('map, starmap, chunks', () => {
  it('maps a task over the previous array output', () => {
    const c = chain(urls.s('site'), map(fetchPage))
    expectTypeOf(app.send(c)).resolves.toEqualTypeOf<AsyncResult<{ url: string; size: number }[]>>()
    const p = chain(pairs.s(1), group(count.si(1)), map(add.partial({ a: 1 }, 'b')))
    expectTypeOf(app.send(p)).resolves.toEqualTypeOf<AsyncResult<number[]>>()
  })

  it('rejects a map whose elements the task cannot take, and a map sent first', () => {
    // @ts-expect-error -- elements are strings; count takes a number
    chain(urls.s('site'), map(count))
    // @ts-expect-error -- the previous output is a number, not an array
    chain(count.s(1), map(count))
    // @ts-expect-error -- a map waits for the previous step's array
    void app.send(map(count))
  })

  it('spreads tuple elements over named fields with starmap', () => {
    const c = chain(pairs.s(3), starmap(add, ['a', 'b']))
    expectTypeOf(app.send(c)).resolves.toEqualTypeOf<AsyncResult<number[]>>()
    // @ts-expect-error -- elements are [number, number]; add has no field x
    starmap(add, ['a', 'x'])
    // @ts-expect-error -- the elements are pairs of numbers, label.s takes strings
    chain(urls.s('x'), starmap(add, ['a', 'b']))
  })

  it('types chunks as the flat list of outputs and checks the items', () => {
    expectTypeOf(app.send(chunks(add, [{ a: 1, b: 2 }], 10))).resolves.toEqualTypeOf<AsyncResult<number[]>>()
    // @ts-expect-error -- items must be add's input
    chunks(add, [{ a: 1 }], 10)
  })
})

describe('success links', () => {
  it('keeps the canvas type and takes a callback that accepts the output', () => {
    const s = add.s({ a: 1, b: 2 }).onSuccess(count.s())
    expectTypeOf(app.send(s)).resolves.toEqualTypeOf<AsyncResult<number>>()
    const c = chain(add.s({ a: 1, b: 2 }), count.s())
      .onSuccess(count.s())
      .onSuccess(label.si('done'))
    expectTypeOf(app.send(c)).resolves.toEqualTypeOf<AsyncResult<number>>()
  })

  it('rejects a callback that cannot take the output', () => {
    // @ts-expect-error -- label takes a string; add gives a number
    add.s({ a: 1, b: 2 }).onSuccess(label.s())
    // @ts-expect-error -- a bound .s(input) callback: use .si(input) to ignore the output
    add.s({ a: 1, b: 2 }).onSuccess(count.s(3))
  })
})

describe('ctx.replace', () => {
  it("types the task's output from what the handler returns, replacement or not", () => {
    const settle = defineTask({
      name: 'tx.settle',
      input: z.number(),
      handler: (n, ctx) => (n < 10 ? n : ctx.replace(chain(count.s(n), count.s()))),
    })
    expectTypeOf(app.send(settle.s(1))).resolves.toEqualTypeOf<AsyncResult<number>>()
    const always = defineTask({
      name: 'tx.always',
      input: z.string(),
      handler: (s, ctx) => ctx.replace(label.s(s)),
    })
    expectTypeOf(app.send(always.s('x'))).resolves.toEqualTypeOf<AsyncResult<string>>()
  })

  it('rejects a replacement whose output is not the task output, or that cannot be sent', () => {
    // @ts-expect-error -- the replacement gives a string; the task's output is a number
    defineTask({
      name: 'tx.bad-output',
      input: z.number(),
      output: z.number(),
      handler: (n, ctx) => ctx.replace(label.s(String(n))),
    })
    defineTask({
      name: 'tx.open',
      input: z.number(),
      // @ts-expect-error -- count.s() waits for an input: a replacement must be ready to send
      handler: (_n, ctx) => ctx.replace(count.s()),
    })
  })
})
