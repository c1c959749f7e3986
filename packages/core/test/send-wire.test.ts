import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { type App, chain, createApp, defineTask, type SendOptions, silentLogger } from '../src/index.js'

// What `send` accepts must be exactly what a worker can decode: each value is either refused at
// send with ERR_VALIDATION naming the field, or round-trips as documented in the README ("What
// round-trips through the wire format") and its handle settles. Before, most of these were
// published, dead-lettered as `undecodable`, and `get()` waited out its timeout.

const STORE = 'send-wire'
const seen = new Map<string, unknown>()
const record = (input: unknown, ctx: { id: string }) => {
  seen.set(ctx.id, input)
  return null
}
const anyTask = defineTask({ name: 'wire.any', input: z.any(), handler: record })
const voidTask = defineTask({ name: 'wire.void', input: z.void(), handler: record })
const optional = defineTask({ name: 'wire.optional', input: z.string().optional(), handler: record })
const dated = defineTask({ name: 'wire.dated', input: z.object({ at: z.date() }), handler: record })
const coerced = defineTask({
  name: 'wire.coerced',
  input: z.object({ at: z.coerce.date() }),
  handler: record,
})
const holes = defineTask({ name: 'wire.holes', input: z.array(z.number().optional()), handler: record })
const nothing = defineTask({ name: 'wire.nothing', input: z.null(), handler: () => undefined })
const one = defineTask({ name: 'wire.one', input: z.null(), handler: () => 1 })
const noQueue = defineTask({ name: 'wire.noqueue', queue: '', input: z.null(), handler: () => null })
const tasks = [anyTask, voidTask, optional, dated, coerced, holes, nothing, one, noQueue]

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
  norm(): number {
    return Math.hypot(this.x, this.y)
  }
}

let app: App
beforeAll(async () => {
  app = createApp({ broker: `memory://${STORE}`, backend: `memory://${STORE}`, tasks, logger: silentLogger })
  await app.worker({ concurrency: 8 }).start()
})
afterAll(() => app.close())

async function refusal(send: () => Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await send()
  } catch (err) {
    return err as { code?: string; message: string }
  }
  return { message: 'send resolved: the message was published' }
}

const circular: Record<string, unknown> = { a: 1 }
circular.self = circular

const refused: [string, () => Promise<unknown>, string][] = [
  ['a function as input', () => app.send(anyTask.s(() => 1)), 'input'],
  ['a Symbol as input', () => app.send(anyTask.s(Symbol('s'))), 'input'],
  ['a function inside the input', () => app.send(anyTask.s({ cb: () => 1 })), 'input.cb'],
  ['a Symbol inside an array', () => app.send(anyTask.s([1, Symbol('s')])), 'input[1]'],
  ['a BigInt', () => app.send(anyTask.s({ total: 10n })), 'input.total'],
  ['a circular reference', () => app.send(anyTask.s(circular)), 'input.self'],
  ['a Map', () => app.send(anyTask.s(new Map([[1, 2]]))), 'input'],
  ['a Set', () => app.send(anyTask.s({ tags: new Set(['a']) })), 'input.tags'],
  ['binary data', () => app.send(anyTask.s({ bytes: Buffer.from('hi') })), 'input.bytes'],
  ['an Error', () => app.send(anyTask.s(new Error('x'))), 'input'],
  [
    'a __proto__ key',
    () => app.send(anyTask.s(JSON.parse('{"a":{"__proto__":{"x":1}}}'))),
    'input.a.__proto__',
  ],
  ['a Date for a z.date() field', () => app.send(dated.s({ at: new Date() })), 'input.at'],
  ['undefined in an array of optional numbers', () => app.send(holes.s([1, undefined])), 'input[1]'],
  ['priority -1 on the signature', () => app.send(anyTask.s(1, { priority: -1 })), 'options.priority'],
  ['priority -1 at send', () => app.send(anyTask.s(1), { priority: -1 }), 'options.priority'],
  ['priority 1.5 at send', () => app.send(anyTask.s(1), { priority: 1.5 }), 'options.priority'],
  ['timeoutMs 0', () => app.send(anyTask.s(1, { timeoutMs: 0 })), 'options.timeoutMs'],
  [
    'a number header',
    () => app.send(anyTask.s(1), { headers: { x: 1 } } as unknown as SendOptions),
    'headers.x',
  ],
  [
    'a __proto__ header key',
    () => app.send(anyTask.s(1), { headers: JSON.parse('{"__proto__":"v"}') }),
    'headers.__proto__',
  ],
  [
    'a queue name over 200 characters',
    () => app.send(anyTask.s(1), { queue: 'q'.repeat(201) }),
    'options.queue',
  ],
  [
    'a signature queue over 200 characters',
    () => app.send(anyTask.s(1, { queue: 'q'.repeat(201) })),
    'options.queue',
  ],
  ['an empty queue name', () => app.send(anyTask.s(1), { queue: '' }), 'options.queue'],
  ["a task whose own queue is ''", () => app.send(noQueue.s(null)), "queue (the task's queue)"],
]

describe('send refuses what a worker could not decode', () => {
  it.each(refused.map(([n, send, field]) => [n, field, send] as const))(
    '%s: ERR_VALIDATION naming %s, nothing published',
    async (_, field, send) => {
      const err = await refusal(send)
      expect(err.code, err.message).toBe('ERR_VALIDATION')
      expect(err.message).toContain(field)
      expect((await app.stats('default')).ready).toBe(0)
    },
  )
})

const roundTrips: [
  string,
  () => Promise<{ id: string; get(o: { timeoutMs: number }): Promise<unknown> }>,
  unknown,
][] = [
  ['undefined for a z.void() task', () => app.send(voidTask.s(undefined)), undefined],
  ['undefined for an optional input', () => app.send(optional.s(undefined)), undefined],
  ['undefined for a z.any() task', () => app.send(anyTask.s(undefined)), undefined],
  ['a Date as its ISO string', () => app.send(anyTask.s(new Date(0))), '1970-01-01T00:00:00.000Z'],
  [
    'a Date read back by z.coerce.date()',
    () => app.send(coerced.s({ at: new Date(5) })),
    { at: new Date(5) },
  ],
  [
    'NaN and Infinity as null',
    () => app.send(anyTask.s([Number.NaN, Number.POSITIVE_INFINITY])),
    [null, null],
  ],
  ['-0 as 0', () => app.send(anyTask.s(-0)), 0],
  ['an undefined property dropped', () => app.send(anyTask.s({ a: 1, b: undefined })), { a: 1 }],
  ['undefined in an array as null', () => app.send(anyTask.s([1, undefined])), [1, null]],
  ['a class instance as a plain object', () => app.send(anyTask.s(new Point(3, 4))), { x: 3, y: 4 }],
  ['a fractional signature countdown, rounded up', () => app.send(anyTask.s(7, { countdownMs: 1.5 })), 7],
  [
    'an .si(undefined) step ignores the previous output',
    async () => app.send(chain(one.s(null), voidTask.si(undefined))),
    undefined,
  ],
  [
    'a step after a handler that returned nothing',
    async () => app.send(chain(nothing.s(null), optional.s())),
    undefined,
  ],
]

describe('send accepts what round-trips, and the handle settles', () => {
  it.each(roundTrips)('%s', async (_, send, expected) => {
    const r = await send()
    await r.get({ timeoutMs: 5000 })
    expect(seen.has(r.id)).toBe(true)
    expect(seen.get(r.id)).toStrictEqual(expected)
  })
})
