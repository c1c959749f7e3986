import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { mergeInput } from '../src/dispatcher-frames.js'
import {
  chain,
  chunks,
  createApp,
  DecodeError,
  decodeEnvelope,
  defineTask,
  type Envelope,
  encodeEnvelope,
  map,
  starmap,
  type WireNode,
} from '../src/index.js'

const add = defineTask({
  name: 'ux.add',
  input: z.object({ a: z.number(), b: z.number() }),
  output: z.number(),
  handler: ({ a, b }) => a + b,
})
const count = defineTask({ name: 'ux.count', input: z.number(), handler: (n) => n })

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return (err as { code?: string }).code
  }
  return undefined
}

const base: Envelope = { v: 1, id: 'id-x', task: 't', queue: 'q', attempt: 1, createdAt: 1 }
const taskNode = (id: string): Extract<WireNode, { kind: 'task' }> => ({ kind: 'task', id, task: 'ux.count' })

describe('wire: frames for success links, maps, partials and replace', () => {
  it('decodes the new frames and nodes', () => {
    const env: Envelope = {
      ...base,
      stack: [
        { t: 'result', id: 'r', task: 'errand.map', flatten: true },
        { t: 'onSuccess', node: { ...taskNode('s'), onSuccess: [taskNode('s2')] } },
        {
          t: 'next',
          node: {
            kind: 'map',
            id: 'm',
            node: { ...taskNode('tpl'), input: {}, merge: { into: 'b' } },
            spread: ['a'],
          },
        },
      ],
    }
    expect(decodeEnvelope(encodeEnvelope(env))).toEqual(env)
  })

  it('refuses a frame or a node field it does not know, naming the task id (what an older worker does)', () => {
    const body = (stack: unknown[]) => new TextEncoder().encode(JSON.stringify({ ...base, stack }))
    for (const stack of [
      [{ t: 'later', node: taskNode('n') }],
      [{ t: 'next', node: { ...taskNode('n'), later: true } }],
      [{ t: 'result', id: 'r', later: 1 }],
      [{ t: 'next', node: { kind: 'later', id: 'n' } }],
    ]) {
      let error: unknown
      try {
        decodeEnvelope(body(stack))
      } catch (err) {
        error = err
      }
      expect(error).toBeInstanceOf(DecodeError)
      expect((error as DecodeError).taskId).toBe('id-x')
    }
  })
})

describe('partial merge rule', () => {
  const node = (input: unknown, into?: string): Extract<WireNode, { kind: 'task' }> => ({
    kind: 'task',
    id: 'p',
    task: 'ux.add',
    input,
    merge: into === undefined ? {} : { into },
  })

  it('fills the open fields from an object; bound fields win', () => {
    expect(mergeInput(node({ a: 1 }), { a: 100, b: 2 })).toEqual({ a: 1, b: 2 })
  })

  it('puts the whole previous output under `into`', () => {
    expect(mergeInput(node({ a: 1 }, 'b'), [1, 2])).toEqual({ a: 1, b: [1, 2] })
  })

  it('takes nothing from an output that is not a plain object (the worker then names the missing field)', () => {
    for (const previous of [5, 'x', null, [1, 2], undefined]) {
      expect(mergeInput(node({ a: 1 }), previous)).toEqual({ a: 1 })
    }
  })
})

describe('run-time checks of the builders', () => {
  it('partial: bound fields must be an object, and not also the `into` field', () => {
    expect(codeOf(() => (add.partial as (b: unknown) => unknown)(5))).toBe('ERR_VALIDATION')
    expect(codeOf(() => (add.partial as (b: unknown, i: string) => unknown)({ a: 1, b: 2 }, 'b'))).toBe(
      'ERR_VALIDATION',
    )
    expect(codeOf(() => (add.partial as (b: unknown, i: string) => unknown)({ a: 1 }, '__proto__'))).toBe(
      'ERR_VALIDATION',
    )
  })

  it("send checks a partial's bound fields against the task schema", async () => {
    const app = createApp({ broker: 'memory://extras-partial', tasks: [add, count] })
    const bad = add.partial({ a: 'five' } as never)
    await expect(app.send(chain(count.s(1), bad as never))).rejects.toMatchObject({
      code: 'ERR_VALIDATION',
      message: expect.stringContaining('input.a'),
    })
    await app.close()
  })

  it('map: a task or an open signature; not sent first', async () => {
    expect(codeOf(() => map(add.s({ a: 1, b: 2 }) as never))).toBe('ERR_VALIDATION')
    expect(codeOf(() => map('ux.add' as never))).toBe('ERR_VALIDATION')
    expect(codeOf(() => starmap(add, [] as never))).toBe('ERR_VALIDATION')
    const app = createApp({ broker: 'memory://extras-map', tasks: [add, count] })
    await expect(app.send(map(count) as never)).rejects.toMatchObject({ code: 'ERR_VALIDATION' })
    await app.close()
  })

  it('chunks: size an integer > 0; every item checked, naming it', () => {
    expect(codeOf(() => chunks(count, [1, 2], 0))).toBe('ERR_VALIDATION')
    expect(codeOf(() => chunks(count, [1, 2], 1.5))).toBe('ERR_VALIDATION')
    expect(() => chunks(add, [{ a: 1, b: 2 }, { a: 1 } as never], 2)).toThrow(/input\.b/)
    expect(codeOf(() => chunks(count, [1, 10n as never], 2))).toBe('ERR_VALIDATION')
    const c = chunks(count, [1, 2, 3, 4, 5], 2)
    expect(c.items).toEqual([[1, 2], [3, 4], [5]])
  })
})

describe('chunks and ctx.replace', () => {
  it('a task that replaces itself inside chunks fails the chunk instead of storing the replacement', async () => {
    const replacing = defineTask({
      name: 'ux.replacing',
      input: z.number(),
      output: z.number(),
      handler: (n, ctx) => ctx.replace(count.s(n)),
    })
    const app = createApp({
      broker: 'memory://extras-chunk-replace',
      backend: 'memory://extras-chunk-replace',
      tasks: [replacing, count],
    })
    await app.worker().start()
    const r = await app.send(chunks(replacing, [1, 2], 2))
    await expect(r.get({ timeoutMs: 5000 })).rejects.toMatchObject({
      code: 'ERR_TASK_FAILED',
      message: expect.stringContaining('ctx.replace inside chunks()'),
    })
    await app.close()
  })
})
