import { chain, chord, defineTask, type ErrorCallbackInput, group, type Outcome } from '@errand/core'
import { expect } from 'vitest'
import { z } from 'zod'
import type { AppSuiteContext } from './app-harness.js'
import { deferred, expectCode, withTimeout } from './helpers.js'

function mathTasks(queue: string) {
  const add = defineTask({
    name: 'conf.wf.add',
    queue,
    input: z.object({ a: z.number(), b: z.number() }),
    output: z.number(),
    handler: ({ a, b }) => a + b,
  })
  const double = defineTask({
    name: 'conf.wf.double',
    queue,
    input: z.number(),
    output: z.number(),
    handler: (n) => n * 2,
  })
  const sum = defineTask({
    name: 'conf.wf.sum',
    queue,
    input: z.array(z.number()),
    output: z.number(),
    handler: (xs) => xs.reduce((s, x) => s + x, 0),
  })
  const sleepy = defineTask({
    name: 'conf.wf.sleepy',
    queue,
    input: z.object({ value: z.number(), ms: z.number() }),
    output: z.number(),
    handler: async ({ value, ms }) => {
      await new Promise((r) => setTimeout(r, ms))
      return value
    },
  })
  const fail = defineTask({
    name: 'conf.wf.fail',
    queue,
    input: z.unknown(),
    output: z.number(),
    handler: () => {
      throw new Error('member failed on purpose')
    },
  })
  return { add, double, sum, sleepy, fail }
}

/** Chains, groups, chords, nesting, failure paths, chord exactly-once under load. */
export function registerAppWorkflowTests({ test, h, soon }: AppSuiteContext): void {
  test('chain passes each output on as the next input; .si() ignores it', async () => {
    const queue = h.queue()
    const { add, double } = mathTasks(queue)
    const app = await h.app({ tasks: [add, double] })
    await app.worker({ concurrency: 4 }).start()
    const r = await app.send(chain(add.s({ a: 1, b: 2 }), double.s(), double.s()))
    expect(
      await r.get({ timeoutMs: soon }),
      "a chain's result must be its last step's output, each output passed on as the next input",
    ).toBe(12)
    expect(
      r.children.map((c) => c.id),
      "a chain's handle must have one child per step",
    ).toHaveLength(3)
    expect(
      await r.children[0]?.get({ timeoutMs: soon }),
      "a chain's first child must hold the first step's result",
    ).toBe(3)
    const si = await app.send(chain(add.s({ a: 1, b: 2 }), add.si({ a: 10, b: 10 }), double.s()))
    expect(
      await si.get({ timeoutMs: soon }),
      'a step signed with .si() must ignore the previous output and use its own input',
    ).toBe(40)
  })

  test('group yields results in signature order, not completion order', async () => {
    const queue = h.queue()
    const { sleepy } = mathTasks(queue)
    const app = await h.app({ tasks: [sleepy] })
    await app.worker({ concurrency: 4 }).start()
    const r = await app.send(
      group(
        sleepy.s({ value: 1, ms: h.ms(150) }),
        sleepy.s({ value: 2, ms: 0 }),
        sleepy.s({ value: 3, ms: h.ms(60) }),
      ),
    )
    expect(
      await r.get({ timeoutMs: soon }),
      "a group's result must list member results in signature order, not completion order",
    ).toEqual([1, 2, 3])
    expect(r.children, "a group's handle must have one child per member").toHaveLength(3)
  })

  test('chord calls its callback once with all results in order', async () => {
    const queue = h.queue()
    const { add, sum } = mathTasks(queue)
    const app = await h.app({ tasks: [add, sum] })
    await app.worker({ concurrency: 4 }).start()
    const r = await app.send(
      chord([add.s({ a: 1, b: 1 }), add.s({ a: 2, b: 2 }), add.s({ a: 3, b: 3 })], sum.s()),
    )
    expect(
      await r.get({ timeoutMs: soon }),
      "a chord's callback must get every member's result, in order",
    ).toBe(12)
    expect(r.children, "a chord's handle must have one child per header member").toHaveLength(3)
  })

  test('chord exactly once: 200 members finished by two workers at concurrency 20', async () => {
    const queue = h.queue()
    let callbacks = 0
    const member = defineTask({
      name: 'conf.stress.member',
      queue,
      input: z.number(),
      output: z.number(),
      handler: (n) => n,
    })
    const total = defineTask({
      name: 'conf.stress.total',
      queue,
      input: z.array(z.number()),
      handler: (xs) => {
        callbacks++
        return { count: xs.length, sum: xs.reduce((s, x) => s + x, 0), ordered: xs.every((x, i) => x === i) }
      },
    })
    const a = await h.app({ tasks: [member, total] })
    const b = await h.app({ tasks: [member, total] })
    await a.worker({ concurrency: 20 }).start()
    await b.worker({ concurrency: 20 }).start()
    const started = Date.now()
    const r = await a.send(
      chord(
        Array.from({ length: 200 }, (_, i) => member.s(i)),
        total.s(),
      ),
    )
    expect(
      await r.get({ timeoutMs: soon * 3 }),
      'the chord callback must get all 200 member outputs in member order',
    ).toEqual({ count: 200, sum: 19_900, ordered: true })
    const elapsed = Date.now() - started
    // Let any duplicate callback surface before counting.
    await new Promise((res) => setTimeout(res, h.ms(300)))
    expect(
      callbacks,
      'the chord callback must run exactly once although two workers finished members at once',
    ).toBe(1)
    expect(elapsed, 'the clock must have moved while the chord ran').toBeGreaterThan(0)
  })

  test('canvases nest: a chain of groups, a group of chains, a chord whose header holds chains', async () => {
    const queue = h.queue()
    const { add, double, sum } = mathTasks(queue)
    const nested = sumNested(queue)
    const app = await h.app({ tasks: [add, double, sum, nested] })
    await app.worker({ concurrency: 8 }).start()
    // chain → group (each member gets 3) → sum → double
    const a = await app.send(
      chain(add.s({ a: 1, b: 2 }), group(double.s(), double.s(), double.s()), sum.s(), double.s()),
    )
    expect(
      await a.get({ timeoutMs: soon }),
      "a chain through a group must feed each member the previous output and the group's list to the next step",
    ).toBe(36)
    // group of chains
    const b = await app.send(
      group(chain(add.s({ a: 1, b: 1 }), double.s()), chain(add.s({ a: 2, b: 2 }), double.s(), double.s())),
    )
    expect(
      await b.get({ timeoutMs: soon }),
      "a group of chains must yield each chain's last output, in order",
    ).toEqual([4, 16])
    // chord whose header holds chains, inside a chain
    const c = await app.send(
      chain(
        chord(
          [
            chain(add.s({ a: 1, b: 1 }), double.s()),
            add.s({ a: 5, b: 5 }),
            group(add.s({ a: 0, b: 1 }), add.s({ a: 0, b: 2 })),
          ],
          nested.s(),
        ),
        double.s(),
      ),
    )
    expect(
      await c.get({ timeoutMs: soon }),
      'a chord whose header holds a chain, a task and a group, inside a chain, must compute (4 + 10 + 3) × 2',
    ).toBe((4 + 10 + 3) * 2)
  })

  test('a failing step stops its chain and calls onError with the task id and error', async () => {
    const queue = h.queue()
    const { add, double, fail } = mathTasks(queue)
    const seen = deferred<ErrorCallbackInput>()
    let doubled = 0
    const countingDouble = defineTask({
      name: 'conf.wf.counting-double',
      queue,
      input: z.number(),
      handler: (n) => {
        doubled++
        return n * 2
      },
    })
    const report = defineTask({
      name: 'conf.wf.report',
      queue,
      input: z.object({
        taskId: z.string(),
        task: z.string(),
        error: z.object({ name: z.string(), message: z.string() }),
      }),
      handler: (info: ErrorCallbackInput) => void seen.resolve(info),
    })
    const app = await h.app({ tasks: [add, double, fail, countingDouble, report] })
    await app.worker({ concurrency: 4 }).start()
    const r = await app.send(chain(add.s({ a: 1, b: 2 }), fail.s(), countingDouble.s()).onError(report.s()))
    await expectCode(() => r.get({ timeoutMs: soon }), 'ERR_TASK_FAILED', 'the chain result')
    const info = await withTimeout(seen.promise, soon, 'the error callback')
    expect(info.task, 'the onError callback must name the task that failed').toBe('conf.wf.fail')
    expect(info.taskId, "the onError callback must carry the failing step's task id").toBe(r.children[1]?.id)
    expect(info.error.message, "the onError callback must carry the step's error message").toContain(
      'member failed on purpose',
    )
    expect(doubled, 'the step after a failed one must not run').toBe(0)
  })

  test('a chord with a failing member does not call back and reports FAILURE with the member error', async () => {
    const queue = h.queue()
    const { add, sum, fail } = mathTasks(queue)
    let calls = 0
    const counted = defineTask({
      name: 'conf.wf.counted-sum',
      queue,
      input: z.array(z.number()),
      handler: (xs) => {
        calls++
        return xs.length
      },
    })
    const app = await h.app({ tasks: [add, sum, fail, counted] })
    await app.worker({ concurrency: 4 }).start()
    const r = await app.send(chord([add.s({ a: 1, b: 1 }), fail.s(null), add.s({ a: 2, b: 2 })], counted.s()))
    let error: unknown
    try {
      await r.get({ timeoutMs: soon })
    } catch (err) {
      error = err
    }
    expect(
      (error as { code?: string }).code,
      'a chord with a failing member must reject with ERR_TASK_FAILED',
    ).toBe('ERR_TASK_FAILED')
    expect(
      String((error as Error).message),
      "the chord's error must carry the failing member's message",
    ).toContain('member failed on purpose')
    expect(calls, "a chord's callback must not run when a member failed").toBe(0)
  })

  test('a chord with allowFailures calls back with every member outcome', async () => {
    const queue = h.queue()
    const { add, fail } = mathTasks(queue)
    const tally = defineTask({
      name: 'conf.wf.tally',
      queue,
      input: z.array(
        z.union([
          z.object({ ok: z.literal(true), value: z.number() }),
          z.object({ ok: z.literal(false), error: z.object({ name: z.string(), message: z.string() }) }),
        ]),
      ),
      handler: (outcomes) => outcomes.map((o) => (o.ok ? o.value : `failed: ${o.error.message}`)),
    })
    const app = await h.app({ tasks: [add, fail, tally] })
    await app.worker({ concurrency: 4 }).start()
    const r = await app.send(chord([add.s({ a: 1, b: 1 }), fail.s(null)], tally.s(), { allowFailures: true }))
    expect(
      await r.get({ timeoutMs: soon }),
      "a chord with allowFailures must call back with each member's outcome, failures included, in order",
    ).toEqual([2, 'failed: member failed on purpose'])
    const typed: Outcome<number>[] = [{ ok: true, value: 1 }]
    expect(typed, 'Outcome<T> values must be usable as typed (compile-time check)').toHaveLength(1)
  })

  test('a workflow goes on after its worker is stopped mid-chain', async () => {
    const queue = h.queue()
    const { add, double } = mathTasks(queue)
    const gate = deferred()
    const entered = deferred()
    const slow = defineTask({
      name: 'conf.wf.slow',
      queue,
      input: z.number(),
      output: z.number(),
      handler: async (n) => {
        entered.resolve()
        await gate.promise
        return n + 1
      },
    })
    const a = await h.app({ tasks: [add, double, slow] })
    const b = await h.app({ tasks: [add, double, slow] })
    const worker = await a.worker({ concurrency: 1, shutdownGraceMs: soon }).start()
    const r = await a.send(chain(add.s({ a: 1, b: 1 }), slow.s(), double.s(), double.s()))
    await withTimeout(entered.promise, soon, 'the slow step')
    const stopping = worker.stop()
    gate.resolve()
    await stopping
    await b.worker({ concurrency: 2 }).start()
    expect(
      await r.get({ timeoutMs: soon }),
      'a chain must finish on another worker after the first was stopped mid-chain',
    ).toBe(12)
  })
}

function sumNested(queue: string) {
  return defineTask({
    name: 'conf.wf.sum-nested',
    queue,
    input: z.tuple([z.number(), z.number(), z.array(z.number())]),
    output: z.number(),
    handler: ([a, b, cs]) => a + b + cs.reduce((s, x) => s + x, 0),
  })
}
