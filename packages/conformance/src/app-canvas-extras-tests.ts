import {
  CHUNK_TASK,
  chain,
  chord,
  chunks,
  type DeadLetterReason,
  defineTask,
  group,
  map,
  starmap,
} from '@errand/core'
import { expect } from 'vitest'
import { z } from 'zod'
import type { AppSuiteContext } from './app-harness.js'
import { deferred, expectCode, withTimeout } from './helpers.js'

function extraTasks(queue: string) {
  // One `add` serves every step, as in machinery and Celery: `c` is where a partial signature
  // puts the previous output.
  const add = defineTask({
    name: 'conf.cx.add',
    queue,
    input: z.object({ a: z.number(), b: z.number(), c: z.number().optional() }),
    output: z.number(),
    handler: ({ a, b, c }) => a + b + (c ?? 0),
  })
  const multiply = defineTask({
    name: 'conf.cx.multiply',
    queue,
    input: z.object({ a: z.number(), b: z.number() }),
    output: z.number(),
    handler: ({ a, b }) => a * b,
  })
  const double = defineTask({
    name: 'conf.cx.double',
    queue,
    input: z.number(),
    output: z.number(),
    handler: (n) => n * 2,
  })
  const range = defineTask({
    name: 'conf.cx.range',
    queue,
    input: z.number().int().min(0),
    output: z.array(z.number()),
    handler: (n) => Array.from({ length: n }, (_, i) => i + 1),
  })
  const pairs = defineTask({
    name: 'conf.cx.pairs',
    queue,
    input: z.number().int().min(0),
    handler: (n): [number, number][] => Array.from({ length: n }, (_, i) => [i, 10 * i]),
  })
  const sleepyDouble = defineTask({
    name: 'conf.cx.sleepy-double',
    queue,
    input: z.number(),
    output: z.number(),
    // Later elements finish first, so an in-order result is not an accident of timing.
    handler: async (n) => {
      await new Promise((r) => setTimeout(r, Math.max(0, 50 - n * 10)))
      return n * 2
    },
  })
  const fail = defineTask({
    name: 'conf.cx.fail',
    queue,
    input: z.unknown(),
    output: z.number(),
    handler: () => {
      throw new Error('failed on purpose')
    },
  })
  return { add, multiply, double, range, pairs, sleepyDouble, fail }
}

/** Partial signatures, map/starmap, chunks and success links, end to end. */
export function registerAppCanvasExtrasTests({ test, h, soon }: AppSuiteContext): void {
  test("partial signatures: machinery's chain add(2,2) → add(5,6,·) → multiply(4,·) gives 60", async () => {
    const queue = h.queue()
    const { add, multiply } = extraTasks(queue)
    const app = await h.app({ tasks: [add, multiply] })
    await app.worker({ concurrency: 2 }).start()
    // machinery integration-tests/suite_test.go testSendChain: (2 + 2) → 5 + 6 + 4 = 15 → 15 × 4.
    const r = await app.send(
      chain(add.s({ a: 2, b: 2 }), add.partial({ a: 5, b: 6 }, 'c'), multiply.partial({ a: 4 }, 'b')),
    )
    expect(await r.get({ timeoutMs: soon })).toBe(60)
    expect(await r.children[1]?.get({ timeoutMs: soon })).toBe(15)
    // The same with one task only: add(1,1)=2 → add(10,20,2)=32 → add(13,15,32)=60.
    const one = await app.send(
      chain(add.s({ a: 1, b: 1 }), add.partial({ a: 10, b: 20 }, 'c'), add.partial({ a: 13, b: 15 }, 'c')),
    )
    expect(await one.get({ timeoutMs: soon })).toBe(60)
  })

  test('partial signatures: the previous output fills the open fields; bound fields win', async () => {
    const queue = h.queue()
    const { add } = extraTasks(queue)
    const seen: unknown[] = []
    const point = defineTask({
      name: 'conf.cx.point',
      queue,
      input: z.null(),
      handler: () => ({ a: 100, b: 7 }),
    })
    const echo = defineTask({
      name: 'conf.cx.echo',
      queue,
      input: z.object({ a: z.number(), b: z.number(), c: z.number() }),
      handler: (input) => {
        seen.push(input)
        return input
      },
    })
    const app = await h.app({ tasks: [add, point, echo] })
    await app.worker({ concurrency: 2 }).start()
    // point gives { a: 100, b: 7 }; a is bound to 1, so 1 is used; b comes from the output.
    const r = await app.send(chain(point.s(null), echo.partial({ a: 1, c: 3 })))
    expect(await r.get({ timeoutMs: soon })).toEqual({ a: 1, b: 7, c: 3 })
    expect(seen).toEqual([{ a: 1, b: 7, c: 3 }])
  })

  test('partial signatures: a merged input the schema refuses is dead-lettered as invalid-input', async () => {
    const queue = h.queue()
    const { add } = extraTasks(queue)
    const word = defineTask({ name: 'conf.cx.word', queue, input: z.null(), handler: () => 'seven' })
    const app = await h.app({ tasks: [add, word] })
    const dead = deferred<DeadLetterReason>()
    await app.worker({ hooks: { onDeadLetter: (_i, reason) => dead.resolve(reason) } }).start()
    // A cast: the compiler refuses this chain (a string cannot be field c); a stale or foreign
    // producer could still send it.
    const bad = add.partial({ a: 1, b: 2 }, 'c') as unknown as ReturnType<typeof word.s>
    const r = await app.send(chain(word.s(null), bad as never))
    expect(await withTimeout(dead.promise, soon, 'the dead letter')).toBe('invalid-input')
    await expectCode(() => r.get({ timeoutMs: soon }), 'ERR_TASK_FAILED', 'the partial step')
  })

  test('map applies a task to each element of the previous output, results in order', async () => {
    const queue = h.queue()
    const { range, sleepyDouble, add } = extraTasks(queue)
    const app = await h.app({ tasks: [range, sleepyDouble, add] })
    await app.worker({ concurrency: 8 }).start()
    const r = await app.send(chain(range.s(5), map(sleepyDouble)))
    expect(await r.get({ timeoutMs: soon })).toEqual([2, 4, 6, 8, 10])
    const empty = await app.send(chain(range.s(0), map(sleepyDouble)))
    expect(await empty.get({ timeoutMs: soon })).toEqual([])
    // a partial signature as the mapped task, and a step after the map
    const partial = await app.send(
      chain(range.s(3), map(add.partial({ a: 100, b: 0 }, 'c')), map(sleepyDouble)),
    )
    expect(await partial.get({ timeoutMs: soon })).toEqual([202, 204, 206])
  })

  test('starmap spreads each tuple element over named fields', async () => {
    const queue = h.queue()
    const { pairs, add } = extraTasks(queue)
    const app = await h.app({ tasks: [pairs, add] })
    await app.worker({ concurrency: 4 }).start()
    const r = await app.send(chain(pairs.s(4), starmap(add, ['a', 'b'])))
    expect(await r.get({ timeoutMs: soon })).toEqual([0, 11, 22, 33])
  })

  test('a map over an output that is not an array fails with the map error and calls onError', async () => {
    const queue = h.queue()
    const { double, sleepyDouble } = extraTasks(queue)
    const seen = deferred<string>()
    const report = defineTask({
      name: 'conf.cx.report',
      queue,
      input: z.object({ taskId: z.string(), task: z.string(), error: z.object({ message: z.string() }) }),
      handler: ({ error }) => void seen.resolve(error.message),
    })
    const app = await h.app({ tasks: [double, sleepyDouble, report] })
    await app.worker({ concurrency: 2 }).start()
    const bad = map(sleepyDouble) as never
    const r = await app.send(chain(double.s(2), bad).onError(report.s()))
    await expectCode(() => r.get({ timeoutMs: soon }), 'ERR_TASK_FAILED', 'the map')
    expect(await withTimeout(seen.promise, soon, 'the error callback')).toContain('array')
  })

  test('chunks: one message per chunk, results flattened in item order', async () => {
    const queue = h.queue()
    const { double } = extraTasks(queue)
    const messages: string[] = []
    const app = await h.app({ tasks: [double] })
    await app.worker({ concurrency: 4, hooks: { onStart: (info) => void messages.push(info.task) } }).start()
    const items = Array.from({ length: 10 }, (_, i) => i)
    const r = await app.send(chunks(double, items, 3))
    expect(await r.get({ timeoutMs: soon })).toEqual(items.map((i) => i * 2))
    expect(messages).toEqual([CHUNK_TASK, CHUNK_TASK, CHUNK_TASK, CHUNK_TASK])
    expect(await (await app.send(chunks(double, [], 3))).get({ timeoutMs: soon })).toEqual([])
    // chunks as a chord header's member and in a chain
    const c = await app.send(chain(chunks(double, [1, 2, 3], 2), map(double)))
    expect(await c.get({ timeoutMs: soon })).toEqual([4, 8, 12])
    expect(chord).toBeTypeOf('function')
  })

  test('onSuccess sends the callback with the output; the handle keeps its own result', async () => {
    const queue = h.queue()
    const { add, double, fail } = extraTasks(queue)
    const got = deferred<number>()
    let calls = 0
    const sink = defineTask({
      name: 'conf.cx.sink',
      queue,
      input: z.number(),
      handler: (n) => {
        calls++
        got.resolve(n)
        return 'sunk'
      },
    })
    const arrays = deferred<number[]>()
    const collect = defineTask({
      name: 'conf.cx.collect',
      queue,
      input: z.array(z.number()),
      handler: (xs) => void arrays.resolve(xs),
    })
    const app = await h.app({ tasks: [add, double, fail, sink, collect] })
    await app.worker({ concurrency: 4 }).start()
    const r = await app.send(chain(add.s({ a: 1, b: 2 }), double.s()).onSuccess(sink.s()))
    expect(await r.get({ timeoutMs: soon })).toBe(6)
    expect(await withTimeout(got.promise, soon, 'the success callback')).toBe(6)
    // on a group: the callback gets the array; on failure it is not sent
    const g = await app.send(group(double.s(1), double.s(2)).onSuccess(collect.s()))
    expect(await g.get({ timeoutMs: soon })).toEqual([2, 4])
    expect(await withTimeout(arrays.promise, soon, 'the group callback')).toEqual([2, 4])
    const f = await app.send(fail.s(null).onSuccess(sink.s()))
    await expectCode(() => f.get({ timeoutMs: soon }), 'ERR_TASK_FAILED', 'the failing task')
    const after = await app.send(double.s(21))
    expect(await after.get({ timeoutMs: soon })).toBe(42)
    expect(calls).toBe(1)
  })
}

/** `return ctx.replace(canvas)`: alone, in a chain, in a group and a chord, and when the canvas fails. */
export function registerAppReplaceTests({ test, h, soon }: AppSuiteContext): void {
  function replaceTasks(queue: string) {
    const { add, double, fail } = extraTasks(queue)
    const parents: { parent: string | undefined; root: string | undefined }[] = []
    const traced = defineTask({
      name: 'conf.cx.traced',
      queue,
      input: z.number(),
      output: z.number(),
      handler: (n, ctx) => {
        parents.push({ parent: ctx.parentId, root: ctx.rootId })
        return n + 1
      },
    })
    // Small numbers are answered at once; larger ones hand their place to a chain.
    const settle = defineTask({
      name: 'conf.cx.settle',
      queue,
      input: z.number(),
      output: z.number(),
      handler: (n, ctx) => (n < 10 ? n : ctx.replace(chain(traced.s(n), double.s()))),
    })
    const broken = defineTask({
      name: 'conf.cx.broken',
      queue,
      input: z.number(),
      output: z.number(),
      handler: (n, ctx) => ctx.replace(chain(double.s(n), fail.s())),
    })
    return { add, double, fail, traced, settle, broken, parents }
  }

  test("replace: the handle gets the canvas's result; the canvas's tasks have the task as parent", async () => {
    const queue = h.queue()
    const t = replaceTasks(queue)
    const app = await h.app({ tasks: [t.add, t.double, t.fail, t.traced, t.settle, t.broken] })
    await app.worker({ concurrency: 4 }).start()
    expect(await (await app.send(t.settle.s(3))).get({ timeoutMs: soon })).toBe(3)
    const r = await app.send(t.settle.s(20))
    expect(await r.get({ timeoutMs: soon })).toBe(42)
    expect(t.parents).toEqual([{ parent: r.id, root: r.id }])
    expect(await r.state()).toBe('SUCCESS')
  })

  test('replace in a chain: the rest of the chain runs after the replacement', async () => {
    const queue = h.queue()
    const t = replaceTasks(queue)
    const app = await h.app({ tasks: [t.add, t.double, t.fail, t.traced, t.settle, t.broken] })
    await app.worker({ concurrency: 4 }).start()
    // add(5, 6) = 11 → settle(11) = (11 + 1) × 2 = 24 → double = 48
    const r = await app.send(chain(t.add.s({ a: 5, b: 6 }), t.settle.s(), t.double.s()))
    expect(await r.get({ timeoutMs: soon })).toBe(48)
    expect(await r.children[1]?.get({ timeoutMs: soon })).toBe(24)
    expect(t.parents[0]?.parent).toBe(r.children[1]?.id)
    expect(t.parents[0]?.root).toBe(r.children[0]?.id)
  })

  test("replace in a group and a chord: the member's result is the replacement's", async () => {
    const queue = h.queue()
    const t = replaceTasks(queue)
    const total = defineTask({
      name: 'conf.cx.total',
      queue,
      input: z.array(z.number()),
      output: z.number(),
      handler: (xs) => xs.reduce((s, x) => s + x, 0),
    })
    const app = await h.app({ tasks: [t.add, t.double, t.fail, t.traced, t.settle, t.broken, total] })
    await app.worker({ concurrency: 4 }).start()
    const g = await app.send(group(t.settle.s(10), t.double.s(1), t.settle.s(2)))
    expect(await g.get({ timeoutMs: soon })).toEqual([22, 2, 2])
    const c = await app.send(chord([t.settle.s(10), t.settle.s(30)], total.s()))
    expect(await c.get({ timeoutMs: soon })).toBe(22 + 62)
  })

  test("replace: a failing replacement fails the task's handle and the rest of its chain", async () => {
    const queue = h.queue()
    const t = replaceTasks(queue)
    const app = await h.app({ tasks: [t.add, t.double, t.fail, t.traced, t.settle, t.broken] })
    await app.worker({ concurrency: 4 }).start()
    const r = await app.send(chain(t.broken.s(1), t.double.s()))
    await expectCode(
      () => r.children[0]?.get({ timeoutMs: soon }) as Promise<unknown>,
      'ERR_TASK_FAILED',
      'the replaced task',
    )
    await expectCode(() => r.get({ timeoutMs: soon }), 'ERR_TASK_FAILED', 'the chain')
  })
}
