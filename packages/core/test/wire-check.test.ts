import { describe, expect, it } from 'vitest'
import { decodeEnvelope, type Envelope, encodeEnvelope } from '../src/index.js'
import { checkWireValue, envelopeProblem } from '../src/wire-check.js'

const base: Envelope = { v: 1, id: 'id-1', task: 't', input: { a: 1 }, queue: 'q', attempt: 1, createdAt: 1 }

// envelopeProblem is a hand-written mirror of what decodeEnvelope accepts (a zod parse per publish
// costs ~2 µs); this table keeps the two in agreement for every field core composes.
const variants: [string, Record<string, unknown>][] = [
  ['valid', {}],
  [
    'all optional fields',
    { eta: 5, expiresAt: 6, priority: 3, timeoutMs: 10, headers: { a: 'b' }, root: 'r', parent: 'p' },
  ],
  ['empty id', { id: '' }],
  ['long id', { id: 'i'.repeat(201) }],
  ['numeric task', { task: 5 }],
  ['long task', { task: 't'.repeat(201) }],
  ['empty queue', { queue: '' }],
  ['long queue', { queue: 'q'.repeat(201) }],
  ['200-character queue', { queue: 'q'.repeat(200) }],
  ['attempt 0', { attempt: 0 }],
  ['attempt 1.5', { attempt: 1.5 }],
  ['createdAt NaN', { createdAt: Number.NaN }],
  ['eta 1.5', { eta: 1.5 }],
  ['eta Infinity', { eta: Number.POSITIVE_INFINITY }],
  ['negative eta', { eta: -5 }],
  ['expiresAt 2.5', { expiresAt: 2.5 }],
  ['priority -1', { priority: -1 }],
  ['priority 0', { priority: 0 }],
  ['priority 2.5', { priority: 2.5 }],
  ['priority as a string', { priority: '1' }],
  ['timeoutMs 0', { timeoutMs: 0 }],
  ['timeoutMs 1.5', { timeoutMs: 1.5 }],
  ['a number header', { headers: { a: 1 } }],
  ['headers as an array', { headers: ['a'] }],
  ['headers null', { headers: null }],
  ['a __proto__ header', { headers: JSON.parse('{"__proto__":"x"}') }],
  ['numeric root', { root: 1 }],
  ['numeric parent', { parent: 1 }],
]

describe('envelopeProblem', () => {
  it.each(variants)('agrees with decodeEnvelope: %s', (_, patch) => {
    const env = { ...base, ...patch } as Envelope
    let decodes: boolean
    try {
      decodeEnvelope(encodeEnvelope(env))
      decodes = true
    } catch {
      decodes = false
    }
    expect(envelopeProblem(env) === undefined).toBe(decodes)
  })

  it('an envelope without input decodes, as undefined input', () => {
    const { input: _, ...rest } = base
    expect(decodeEnvelope(encodeEnvelope(rest as Envelope)).input).toBeUndefined()
  })
})

describe('checkWireValue', () => {
  const accessorThrows = Object.defineProperty({}, 'x', {
    enumerable: true,
    get() {
      throw new Error('nope')
    },
  })
  let deep: unknown = 1
  for (let i = 0; i < 100_000; i++) deep = [deep]
  const refused: [string, unknown, (string | number)[], string][] = [
    [
      'a throwing toJSON',
      {
        d: {
          toJSON: () => {
            throw new Error('bad date')
          },
        },
      },
      ['d'],
      'bad date',
    ],
    ['a throwing getter', { o: accessorThrows }, ['o', 'x'], 'nope'],
    ['a toJSON that returns a Map', { m: { toJSON: () => new Map() } }, ['m'], 'Map'],
    ['nesting too deep for the stack', deep, [], 'nested too deeply'],
    ['a Promise', { p: Promise.resolve(1) }, ['p'], 'await it first'],
    ['a RegExp in an array', [1, /x/], [1], 'RegExp'],
  ]
  it.each(refused)('refuses %s, naming the path', (_, value, path, words) => {
    const check = checkWireValue(value)
    expect(check.ok).toBe(false)
    if (check.ok) return
    expect(check.issue.path.slice(0, path.length)).toEqual(path)
    expect(check.issue.message).toContain(words)
  })

  const accepted: [string, unknown, boolean][] = [
    ['plain data', { a: [1, 'x', true, null, { b: 2 }] }, false],
    ['a null-prototype object', Object.assign(Object.create(null), { a: 1 }), false],
    [
      'a shared (not circular) reference',
      (() => {
        const s = { x: 1 }
        return { a: s, b: s }
      })(),
      false,
    ],
    ['a Date deep inside', { at: [new Date(0)] }, true],
    ['a boxed number', { n: Object(5) }, true],
    ['a sparse array', new Array<number>(3).fill(1, 0, 1), true],
    ['an invalid Date (toJSON gives null)', new Date(Number.NaN), true],
  ]
  it.each(accepted)('accepts %s (converted: %s)', (_, value, converted) => {
    expect(checkWireValue(value)).toEqual({ ok: true, converted })
  })
})
