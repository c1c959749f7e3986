// decodeEnvelope checks the common envelope (no stack) by hand before the schema: the result and
// every refusal must be the schema's, field order included.
import { describe, expect, it } from 'vitest'
import { decodeEnvelope, encodeEnvelope, envelopeSchema } from '../src/envelope.js'

const base = { v: 1, id: 'id-1', task: 't.one', queue: 'q', attempt: 1, createdAt: 1_700_000_000_000 }

function bytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value))
}

/** What the schema alone says about `value` (sent through JSON). */
function bySchema(value: unknown): { ok: true; data: unknown } | { ok: false } {
  const parsed = envelopeSchema.safeParse(JSON.parse(JSON.stringify(value)))
  return parsed.success ? { ok: true, data: parsed.data } : { ok: false }
}

const accepted: Record<string, unknown>[] = [
  base,
  { ...base, input: { n: 1, data: 'x' } },
  { ...base, input: null },
  { createdAt: 5, attempt: 3, queue: 'q', input: [1, 2], task: 't', id: 'i', v: 1 },
  {
    ...base,
    eta: 10,
    expiresAt: 20,
    priority: 0,
    timeoutMs: 1,
    headers: { traceparent: '00-abc', b: '' },
    root: '',
    parent: 'p',
    deferrals: 2,
    debounce: 'k',
  },
  { ...base, headers: {} },
  { ...base, id: 'x'.repeat(200) },
  { ...base, eta: -5 },
]

const refused: Record<string, unknown>[] = [
  { ...base, id: '' },
  { ...base, id: 'x'.repeat(201) },
  { ...base, task: 7 },
  { ...base, queue: '' },
  { ...base, attempt: 0 },
  { ...base, attempt: 1.5 },
  { ...base, attempt: 2 ** 53 },
  { ...base, attempt: '1' },
  { ...base, createdAt: null },
  { ...base, eta: 1.5 },
  { ...base, eta: null },
  { ...base, expiresAt: 'x' },
  { ...base, priority: -1 },
  { ...base, timeoutMs: 0 },
  { ...base, headers: { a: 1 } },
  { ...base, headers: [] },
  { ...base, headers: null },
  { ...base, root: 5 },
  { ...base, parent: null },
  { ...base, deferrals: 0 },
  { ...base, debounce: '' },
  { ...base, extra: 1 },
  { ...base, stack: 'no' },
]

describe('decodeEnvelope: the common envelope checked by hand, as the schema would', () => {
  it('accepts what the schema accepts, with the same fields in the same order', () => {
    for (const value of accepted) {
      const schema = bySchema(value)
      expect(schema.ok, JSON.stringify(value)).toBe(true)
      const decoded = decodeEnvelope(bytes(value))
      expect(decoded).toStrictEqual((schema as { data: unknown }).data)
      expect(JSON.stringify(decoded)).toBe(JSON.stringify((schema as { data: unknown }).data))
    }
  })

  it("refuses what the schema refuses, with the schema's words", () => {
    for (const value of refused) {
      expect(bySchema(value).ok, JSON.stringify(value)).toBe(false)
      expect(() => decodeEnvelope(bytes(value)), JSON.stringify(value)).toThrow(/does not match its schema/)
    }
  })

  it('a stack goes to the schema; -0 goes to the schema', () => {
    const withStack = { ...base, stack: [{ t: 'join', group: 'g', index: 0, size: 2 }] }
    expect(decodeEnvelope(bytes(withStack))).toStrictEqual(
      bySchema(withStack).ok && envelopeSchema.parse(withStack),
    )
    const minusZero = new TextEncoder().encode(
      JSON.stringify(base).replace('"createdAt":1700000000000', '"createdAt":-0'),
    )
    expect(decodeEnvelope(minusZero)).toStrictEqual(
      envelopeSchema.parse(JSON.parse(new TextDecoder().decode(minusZero))),
    )
  })

  it('the headers are a copy; the input is the parsed value', () => {
    const decoded = decodeEnvelope(encodeEnvelope({ ...base, v: 1, headers: { a: 'b' }, input: { n: 1 } }))
    expect(decoded.headers).toEqual({ a: 'b' })
    expect(Object.getPrototypeOf(decoded.headers)).toBe(Object.prototype)
  })

  it('bytes: invalid UTF-8 and a BOM are refused as before; multibyte text decodes', () => {
    const json = new TextEncoder().encode(JSON.stringify({ ...base, input: 'é€😀' }))
    expect(decodeEnvelope(json).input).toBe('é€😀')
    for (const bad of [[0xff], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xe2, 0x82]]) {
      const bytes = new Uint8Array([
        ...json.subarray(0, json.length - 2),
        ...bad,
        ...json.subarray(json.length - 2),
      ])
      expect(() => decodeEnvelope(bytes)).toThrow('message is not valid UTF-8')
    }
    const bom = new Uint8Array([0xef, 0xbb, 0xbf, ...json])
    expect(() => decodeEnvelope(bom)).toThrow(/message is not JSON/)
    const inside = new Uint8Array(json.length + 4)
    inside.set(json, 2)
    expect(decodeEnvelope(inside.subarray(2, 2 + json.length)).input).toBe('é€😀')
  })
})
