import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { backoffDelay, createApp, defineTask, MemoryBroker, maskCredentials } from '../src/index.js'
import { resolveBroker } from '../src/resolve-adapter.js'

async function failure(fn: () => unknown): Promise<{ code?: string; message: string }> {
  try {
    await fn()
  } catch (err) {
    return err as { code?: string; message: string }
  }
  throw new Error('expected a failure')
}

const noop = defineTask({ name: 'opts.noop', input: z.null(), handler: () => null })

describe('createApp options', () => {
  it('names an unknown option', async () => {
    const err = await failure(() => createApp({ broker: 'memory://', tasks: [], resultTTL: 5 } as never))
    expect(err.code).toBe('ERR_INVALID_OPTION')
    expect(err.message).toContain('resultTTL')
  })

  it('names a wrong option type', async () => {
    const err = await failure(() => createApp({ broker: 'memory://', resultTtlMs: -1 }))
    expect(err.code).toBe('ERR_INVALID_OPTION')
    expect(err.message).toContain('resultTtlMs')
  })

  it('refuses an unknown scheme, naming the known ones', async () => {
    const err = await failure(() => createApp({ broker: 'kafka://127.0.0.1:9092' }).connect())
    expect(err.code).toBe('ERR_INVALID_OPTION')
    expect(err.message).toContain('redis:')
  })

  it('names the package to install when an adapter is missing, and never prints the password', async () => {
    const err = await failure(() =>
      resolveBroker('redis://user:hunter2@127.0.0.1:6379', { 'redis:': '@errand/not-installed-here' }),
    )
    expect(err.code).toBe('ERR_ADAPTER_NOT_INSTALLED')
    expect(err.message).toContain('pnpm add @errand/not-installed-here')
    expect(err.message).not.toContain('hunter2')
  })

  it('masks credentials in a bad URL', async () => {
    const err = await failure(() => createApp({ broker: 'redis://user:hunter2@[bad' }).connect())
    expect(err.code).toBe('ERR_INVALID_OPTION')
    expect(err.message).not.toContain('hunter2')
  })

  it('refuses two different tasks with one name', () => {
    const twin = defineTask({ name: 'opts.noop', input: z.null(), handler: () => 1 })
    expect(() => createApp({ broker: 'memory://', tasks: [noop, twin] })).toThrow(/two different tasks/)
  })

  it('refuses what the broker cannot do with ERR_NOT_SUPPORTED', async () => {
    const broker = new MemoryBroker({ name: 'opts', capabilities: { maxPriority: 0, maxDelayMs: 0 } })
    const app = createApp({ broker, tasks: [noop] })
    expect((await failure(() => app.send(noop.s(null, { priority: 3 })))).code).toBe('ERR_NOT_SUPPORTED')
    expect((await failure(() => app.send(noop.s(null), { countdownMs: 1000 }))).code).toBe(
      'ERR_NOT_SUPPORTED',
    )
    expect((await failure(() => app.send(noop.s(null), { dedupKey: 'k' }))).code).toBe('ERR_NOT_SUPPORTED')
    expect((await failure(() => app.cancel('x'))).code).toBe('ERR_NOT_SUPPORTED')
    await app.close()
  })

  it('refuses a body over the broker limit with ERR_PAYLOAD_TOO_LARGE naming size and limit', async () => {
    const big = defineTask({ name: 'opts.big', input: z.string(), handler: () => null })
    const app = createApp({
      broker: new MemoryBroker({ name: 'opts2', capabilities: { maxMessageBytes: 1000 } }),
      tasks: [big],
    })
    const err = await failure(() => app.send(big.s('x'.repeat(2000))))
    expect(err.code).toBe('ERR_PAYLOAD_TOO_LARGE')
    expect(err.message).toMatch(/\d+ bytes, over the limit of 1000 bytes/)
    await app.close()
  })

  it('is closed for good after close()', async () => {
    const app = createApp({ broker: 'memory://', tasks: [noop] })
    await app.close()
    expect((await failure(() => app.send(noop.s(null)))).code).toBe('ERR_CLOSED')
  })
})

describe('backoff', () => {
  it('computes fixed, exponential and fibonacci delays with a cap', () => {
    const fixed = [1, 2, 3].map((a) => backoffDelay({ type: 'fixed', delayMs: 100 }, a))
    const exp = [1, 2, 3, 4].map((a) =>
      backoffDelay({ type: 'exponential', delayMs: 100, maxDelayMs: 500 }, a),
    )
    const fib = [1, 2, 3, 4, 5].map((a) => backoffDelay({ type: 'fibonacci', delayMs: 10 }, a))
    expect(fixed).toEqual([100, 100, 100])
    expect(exp).toEqual([100, 200, 400, 500])
    expect(fib).toEqual([10, 10, 20, 30, 50])
  })

  it('jitter spreads a delay over [delay/2, delay]', () => {
    expect(backoffDelay({ type: 'fixed', delayMs: 100, jitter: true }, 1, () => 0)).toBe(50)
    expect(backoffDelay({ type: 'fixed', delayMs: 100, jitter: true }, 1, () => 0.999)).toBe(100)
  })

  it('refuses a bad retry policy at definition, naming the field', () => {
    expect(() =>
      defineTask({ name: 'opts.bad-retry', input: z.null(), retry: { attempts: 0 }, handler: () => null }),
    ).toThrow(/retry\.attempts/)
  })
})

describe('maskCredentials', () => {
  it('masks passwords in URLs and secret query parameters', () => {
    expect(maskCredentials('redis://u:p4ss@h:1/0')).toBe('redis://u:***@h:1/0')
    expect(maskCredentials('amqp://guest:guest@127.0.0.1')).toBe('amqp://guest:***@127.0.0.1')
    expect(maskCredentials('sqs://?region=x&secretAccessKey=abc&endpoint=y')).toBe(
      'sqs://?region=x&secretAccessKey=***&endpoint=y',
    )
    expect(maskCredentials('no url here')).toBe('no url here')
  })
})
