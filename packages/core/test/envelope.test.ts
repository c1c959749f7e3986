import { describe, expect, it } from 'vitest'
import {
  DEFAULT_MAX_ENVELOPE_BYTES,
  decodeEnvelope,
  type Envelope,
  encodeEnvelope,
  envelopeJsonSchema,
} from '../src/index.js'

const enc = new TextEncoder()
const base: Envelope = {
  v: 1,
  id: 'id-1',
  task: 't',
  input: { a: [1, 'ü'] },
  queue: 'q',
  attempt: 1,
  createdAt: 1,
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return (err as { code?: string }).code
  }
  return undefined
}

describe('wire envelope', () => {
  it('round-trips', () => {
    expect(decodeEnvelope(encodeEnvelope(base))).toEqual(base)
  })

  it('refuses bad UTF-8, bad JSON, non-objects and unknown versions with ERR_DECODE', () => {
    expect(codeOf(() => decodeEnvelope(new Uint8Array([0xff, 0xfe])))).toBe('ERR_DECODE')
    expect(codeOf(() => decodeEnvelope(enc.encode('{"v":1,')))).toBe('ERR_DECODE')
    expect(codeOf(() => decodeEnvelope(enc.encode('[1,2]')))).toBe('ERR_DECODE')
    expect(codeOf(() => decodeEnvelope(enc.encode(JSON.stringify({ ...base, v: 2 }))))).toBe('ERR_DECODE')
  })

  it('refuses __proto__ keys, also when spelt with a unicode escape', () => {
    const plain =
      '{"v":1,"id":"x","task":"t","input":{"__proto__":{"polluted":1}},"queue":"q","attempt":1,"createdAt":1}'
    const escaped = plain.replace('__proto__', '\\u005f_proto__')
    expect(codeOf(() => decodeEnvelope(enc.encode(plain)))).toBe('ERR_DECODE')
    expect(codeOf(() => decodeEnvelope(enc.encode(escaped)))).toBe('ERR_DECODE')
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('refuses unknown fields and wrong types, naming the field', () => {
    let message = ''
    try {
      decodeEnvelope(enc.encode(JSON.stringify({ ...base, attempt: 0 })))
    } catch (err) {
      message = (err as Error).message
    }
    expect(message).toContain('attempt')
    expect(codeOf(() => decodeEnvelope(enc.encode(JSON.stringify({ ...base, extra: 1 }))))).toBe('ERR_DECODE')
  })

  it('refuses oversized bodies with ERR_PAYLOAD_TOO_LARGE', () => {
    const big = encodeEnvelope({ ...base, input: 'x'.repeat(2000) })
    expect(codeOf(() => decodeEnvelope(big, 1000))).toBe('ERR_PAYLOAD_TOO_LARGE')
    expect(DEFAULT_MAX_ENVELOPE_BYTES).toBe(10 * 1024 * 1024)
  })

  it('publishes a JSON Schema naming the fields', () => {
    const schema = envelopeJsonSchema() as { properties: Record<string, unknown>; required: string[] }
    expect(Object.keys(schema.properties)).toEqual(
      expect.arrayContaining(['v', 'id', 'task', 'input', 'stack']),
    )
    expect(schema.required).toEqual(
      expect.arrayContaining(['v', 'id', 'task', 'queue', 'attempt', 'createdAt']),
    )
  })
})
