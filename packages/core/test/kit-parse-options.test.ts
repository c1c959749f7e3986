import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { Lifecycle, optionsFromQuery, parseOptions } from '../src/kit/index.js'

const schema = z
  .object({
    url: z.string().optional(),
    leaseMs: z.number().int().min(100).default(30_000),
    reconnect: z
      .object({ maxDelayMs: z.number().int().min(1).optional() })
      .strict()
      .optional(),
  })
  .strict()

function caught(fn: () => unknown): { code?: string; option?: string; message: string } {
  try {
    fn()
  } catch (err) {
    return err as { code?: string; option?: string; message: string }
  }
  throw new Error('expected a throw')
}

describe('parseOptions (the kit)', () => {
  it('returns the schema output, defaults filled', () => {
    expect(parseOptions(schema, { url: 'my://h' }, 'my')).toEqual({ url: 'my://h', leaseMs: 30_000 })
  })

  it('names the option that is wrong: a path, an unknown key, a non-object', () => {
    expect(caught(() => parseOptions(schema, { leaseMs: 5 }, 'my'))).toMatchObject({
      code: 'ERR_INVALID_OPTION',
      option: 'leaseMs',
    })
    expect(caught(() => parseOptions(schema, { reconnect: { maxDelayMs: 0 } }, 'my'))).toMatchObject({
      option: 'reconnect.maxDelayMs',
    })
    const unknown = caught(() => parseOptions(schema, { leaseMS: 500 }, 'my'))
    expect(unknown).toMatchObject({ option: 'leaseMS', message: expect.stringContaining('unknown option') })
    for (const input of [null, 'my://h', 3, [1]]) {
      expect(
        caught(() => parseOptions(schema, input, 'my')),
        String(input),
      ).toMatchObject({
        code: 'ERR_INVALID_OPTION',
        option: 'options',
      })
    }
  })

  it('never prints a password given in a message', () => {
    const strict = z.object({ url: z.string().refine(() => false, 'bad url postgres://u:hunter2@h/db') })
    const err = caught(() => parseOptions(strict, { url: 'x' }, 'my'))
    expect(err.option).toBe('url')
    expect(err.message).not.toContain('hunter2')
  })
})

describe('optionsFromQuery with URLSearchParams and a pass-through predicate (the kit)', () => {
  const query = z.object({ leaseMs: z.number().int().optional(), mode: z.enum(['a', 'b']).optional() })

  it('reads parameters given without a URL, leaving the rest', () => {
    const given = new URLSearchParams('leaseMs=500&x_lib=1')
    const { options, url } = optionsFromQuery(given, query, {
      adapter: 'my',
      passThrough: (p) => p.startsWith('x_'),
    })
    expect(options).toEqual({ leaseMs: 500 })
    expect(url.toString()).toBe('x_lib=1')
    expect(given.toString(), 'the given parameters are not changed').toBe('leaseMs=500&x_lib=1')
    expect(
      caught(() => optionsFromQuery(new URLSearchParams('mode=c'), query, { adapter: 'my' })),
    ).toMatchObject({
      option: 'mode',
    })
    expect(
      caught(() =>
        optionsFromQuery(new URLSearchParams('y_lib=1'), query, { adapter: 'my', passThrough: () => false }),
      ),
    ).toMatchObject({ option: 'y_lib' })
  })
})

describe('Lifecycle.pendingConnect (the kit)', () => {
  it('waits for a connect on its way without starting one', async () => {
    const life = new Lifecycle('my')
    let opens = 0
    await life.pendingConnect()
    expect(opens, 'nothing on its way: resolves, connects nothing').toBe(0)
    let finish!: () => void
    const connecting = life.connect(
      () =>
        new Promise<void>((resolve) => {
          opens++
          finish = resolve
        }),
    )
    let waited = false
    const waiting = life.pendingConnect().then(() => {
      waited = true
    })
    await new Promise((r) => setTimeout(r, 5))
    expect(waited).toBe(false)
    finish()
    await Promise.all([connecting, waiting])
    expect(waited).toBe(true)
    expect(life.state).toBe('open')
    expect(opens).toBe(1)
    const failing = new Lifecycle('my')
    const refused = failing.connect(async () => {
      throw new Error('refused')
    })
    await expect(failing.pendingConnect()).rejects.toThrow('refused')
    await expect(refused).rejects.toThrow('refused')
  })
})
