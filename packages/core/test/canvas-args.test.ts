import { afterAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { chain, chord, createApp, defineTask, group, silentLogger } from '../src/index.js'

// TypeScript refuses all of these; plain JavaScript (or a cast) used to get far-away failures
// such as "canvas.errbacks is not iterable". Each is now refused where it is written, naming
// the builder and the position.

const add = defineTask({ name: 'args.add', input: z.number(), handler: (n) => n + 1 })
const sum = defineTask({ name: 'args.sum', input: z.array(z.number()), handler: (xs) => xs.length })
const app = createApp({ broker: 'memory://canvas-args', tasks: [add, sum], logger: silentLogger })
afterAll(() => app.close())

// biome-ignore lint/suspicious/noExplicitAny: these tests call the API the way plain JavaScript does
const js = (v: unknown): any => v

async function failure(fn: () => unknown): Promise<{ code?: string; message: string }> {
  try {
    await fn()
  } catch (err) {
    return err as { code?: string; message: string }
  }
  return { message: 'no error' }
}

const cases: [string, () => unknown, string, string][] = [
  [
    'group([a, b])',
    () => group(js([add.s(1), add.s(2)])),
    'ERR_VALIDATION',
    'group: takes its members as arguments',
  ],
  [
    'a group member that is not a canvas',
    () => group(add.s(1), js({})),
    'ERR_VALIDATION',
    'group: member 1 is not a signature',
  ],
  [
    'a task instead of a signature',
    () => group(add.s(1), js(add)),
    'ERR_VALIDATION',
    'the task "args.add" itself',
  ],
  [
    'chain([a, b])',
    () => chain(js([add.s(1), add.s()])),
    'ERR_VALIDATION',
    'chain: takes its steps as arguments',
  ],
  [
    'a chain step that is not a canvas',
    () => chain(add.s(1), js(5)),
    'ERR_VALIDATION',
    'chain: step 1 is not a signature',
  ],
  ['a chain with no steps', () => js(chain)(), 'ERR_VALIDATION', 'chain: needs at least one step'],
  [
    'a chord header that is one signature',
    () => chord(js(add.s(1)), js(sum.s())),
    'ERR_VALIDATION',
    'chord: the header must be an array',
  ],
  [
    'a chord header member that is null',
    () => chord([add.s(1), js(null)], js(sum.s())),
    'ERR_VALIDATION',
    'chord: header member 1',
  ],
  [
    'a chord callback that is a string',
    () => chord([add.s(1)], js('sum')),
    'ERR_VALIDATION',
    'chord: the callback',
  ],
  [
    'a misspelt chord option',
    () => chord([add.s(1)], sum.s(), js({ allowFailure: true })),
    'ERR_INVALID_OPTION',
    'allowFailure',
  ],
  [
    'an onError callback that is not a canvas',
    () => add.s(1).onError(js({})),
    'ERR_VALIDATION',
    'onError: the callback',
  ],
  [
    'signature options that are a string',
    () => add.s(1, js('fast')),
    'ERR_INVALID_OPTION',
    's: options must be an object',
  ],
  ['a misspelt signature option', () => add.s(1, js({ prority: 1 })), 'ERR_INVALID_OPTION', 'prority'],
  ['a misspelt option in set()', () => add.s(1).set(js({ qeue: 'x' })), 'ERR_INVALID_OPTION', 'qeue'],
  [
    'send() of a plain object',
    () => app.send(js({ task: 'args.add' })),
    'ERR_VALIDATION',
    'send: expected a signature or canvas',
  ],
  ['send() of a task', () => app.send(js(add)), 'ERR_VALIDATION', '.s(input)'],
  ['send() of an unbound signature', () => app.send(js(add.s())), 'ERR_VALIDATION', 'has no input'],
  [
    'a misspelt send option',
    () => app.send(add.s(1), js({ countdown: 5 })),
    'ERR_INVALID_OPTION',
    'countdown',
  ],
  [
    'send options that are a string',
    () => app.send(add.s(1), js('now')),
    'ERR_INVALID_OPTION',
    'send options must be an object',
  ],
  [
    'a dedupKey that is a number',
    () => app.send(add.s(1), js({ dedupKey: 5 })),
    'ERR_INVALID_OPTION',
    'dedupKey',
  ],
  [
    'a dedupKey longer than 500 characters',
    () => app.send(add.s(1), { dedupKey: 'k'.repeat(501) }),
    'ERR_INVALID_OPTION',
    'dedupKey',
  ],
  [
    'an unknown dedupMode',
    () => app.send(add.s(1), js({ dedupKey: 'k', dedupMode: 'latest' })),
    'ERR_INVALID_OPTION',
    'dedupMode',
  ],
  [
    'debounce without its quiet period',
    () => app.send(add.s(1), { dedupKey: 'k', dedupMode: 'debounce' }),
    'ERR_INVALID_OPTION',
    'dedupTtlMs',
  ],
  [
    'expiresInMs that is not a positive integer',
    () => app.send(add.s(1), { expiresInMs: -5 }),
    'ERR_INVALID_OPTION',
    'expiresInMs',
  ],
  [
    'both expiresAt and expiresInMs',
    () => app.send(add.s(1), { expiresInMs: 5, expiresAt: Date.now() + 5 }),
    'ERR_INVALID_OPTION',
    'expiresAt',
  ],
  [
    'sendMany() of one signature',
    () => app.sendMany(js(add.s(1))),
    'ERR_VALIDATION',
    'sendMany: expected an array',
  ],
]

describe('canvas builders and send check their arguments at run time', () => {
  it.each(cases)('%s', async (_, call, code, words) => {
    const err = await failure(call)
    expect(err.code, err.message).toBe(code)
    expect(err.message).toContain(words)
  })
})
