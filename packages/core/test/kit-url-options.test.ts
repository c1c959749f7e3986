import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { optionsFromQuery, parseStoreUrl, reconnectDelay } from '../src/kit/index.js'

const schema = z
  .object({
    leaseMs: z.number().int().min(100).optional(),
    tls: z.boolean().optional(),
    prefix: z.string().min(1).optional(),
    mode: z.enum(['fast', 'safe']).default('safe'),
  })
  .strict()

function read(url: string) {
  return optionsFromQuery(parseStoreUrl(url, 'my'), schema, {
    adapter: 'my',
    rename: { lease: 'leaseMs' },
    passThrough: ['sslmode'],
  })
}

describe('URL options through the adapter schema (the kit)', () => {
  it('converts each parameter to its option type and leaves pass-through ones in the URL', () => {
    const { options, url } = read('my://u:pw@h:1/x?lease=500&tls=true&prefix=app&mode=fast&sslmode=require')
    expect(options).toEqual({ leaseMs: 500, tls: true, prefix: 'app', mode: 'fast' })
    expect(url.search).toBe('?sslmode=require')
    expect(read('my://h?tls=0').options).toEqual({ tls: false })
  })

  it('names the parameter that is wrong and never shows the password', () => {
    const cases: [string, string, RegExp][] = [
      ['my://u:hunter2@h?bogus=1', 'bogus', /unknown URL parameter \(known: .*lease.*\)/],
      ['my://u:hunter2@h?lease=abc', 'lease', /expected a number/],
      ['my://u:hunter2@h?lease=5', 'lease', /100/],
      ['my://u:hunter2@h?tls=maybe', 'tls', /true or false/],
      ['my://u:hunter2@h?mode=slow', 'mode', /fast|safe/],
      ['my://u:hunter2@h?lease=200&leaseMs=300', 'leaseMs', /twice/],
    ]
    for (const [text, option, message] of cases) {
      let caught: unknown
      try {
        read(text)
      } catch (err) {
        caught = err
      }
      expect(caught, text).toMatchObject({ code: 'ERR_INVALID_OPTION', option })
      expect(String((caught as Error).message), text).toMatch(message)
      expect(String((caught as Error).message), text).not.toContain('hunter2')
    }
    expect(() => parseStoreUrl('not a url :pw@', 'my')).toThrow(/invalid option "url"/)
  })

  it('reconnectDelay grows from initialMs to maxMs with equal jitter', () => {
    const low = () => 0
    const high = () => 0.999999
    expect(reconnectDelay(1, { initialMs: 100, maxMs: 5000 }, high)).toBe(100)
    expect(reconnectDelay(1, { initialMs: 100, maxMs: 5000 }, low)).toBe(50)
    expect(reconnectDelay(4, { initialMs: 100, maxMs: 5000 }, high)).toBe(800)
    expect(reconnectDelay(40, { initialMs: 100, maxMs: 5000 }, high)).toBe(5000)
    expect(reconnectDelay(40, { initialMs: 100, maxMs: 5000 }, low)).toBe(2500)
    expect(reconnectDelay(2)).toBeGreaterThanOrEqual(100)
  })
})
