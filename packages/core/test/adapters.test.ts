import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import {
  type AdapterContext,
  createApp,
  defineAdapter,
  defineTask,
  type Logger,
  MemoryBroker,
  MemoryResultBackend,
  registerAdapter,
} from '../src/index.js'

const echo = defineTask({
  name: 'adapters.echo',
  input: z.object({ n: z.number() }),
  handler: ({ n }) => n * 2,
})

async function failure(fn: () => unknown): Promise<{ code?: string; message: string }> {
  try {
    await fn()
  } catch (err) {
    return err as { code?: string; message: string }
  }
  throw new Error('expected a failure')
}

/** A third-party adapter for a scheme core has never heard of, recording what it was given. */
function fakeAdapter(scheme: string) {
  const calls: { url: string; context: AdapterContext }[] = []
  const adapter = defineAdapter({
    name: `fake ${scheme}`,
    schemes: [scheme],
    createBroker: (url, context) => {
      calls.push({ url, context })
      return new MemoryBroker({ url: `memory://${scheme.replace(':', '')}-${Math.random()}` })
    },
    createResultBackend: (url, context) => {
      calls.push({ url, context })
      return new MemoryResultBackend({ url: 'memory://' })
    },
  })
  return { adapter, calls }
}

describe('pluggable adapters', () => {
  it("an app's own adapter serves a third-party scheme by URL, end to end", async () => {
    const { adapter, calls } = fakeAdapter('acme:')
    const app = createApp({
      broker: 'acme://db/1',
      backend: 'acme://db/1',
      tasks: [echo],
      adapters: [adapter],
    })
    try {
      await app.worker({ concurrency: 1 }).start()
      const r = await app.send(echo.s({ n: 21 }))
      expect(await r.get({ timeoutMs: 5_000 })).toBe(42)
      expect(calls.map((c) => c.url)).toEqual(['acme://db/1', 'acme://db/1'])
    } finally {
      await app.close()
    }
  })

  it("factories get the app's logger, with credentials masked", async () => {
    const { adapter, calls } = fakeAdapter('acmelog:')
    const lines: string[] = []
    const logger: Logger = { debug() {}, info() {}, warn: (m) => lines.push(m), error: (m) => lines.push(m) }
    const app = createApp({ broker: 'acmelog://x', adapters: [adapter], logger })
    try {
      await app.connect()
      calls[0]?.context.logger.warn('cannot reach acmelog://user:hunter2@db:1')
      expect(lines).toHaveLength(1)
      expect(lines[0]).not.toContain('hunter2')
    } finally {
      await app.close()
    }
  })

  it('registerAdapter makes a scheme work in every app; a second adapter for it is refused', async () => {
    const { adapter } = fakeAdapter('acmereg:')
    registerAdapter(adapter)
    registerAdapter(adapter) // the same one again is harmless
    const app = createApp({ broker: 'acmereg://x' })
    await app.connect()
    await app.close()
    const other = fakeAdapter('acmereg:').adapter
    const err = await failure(() => registerAdapter(other))
    expect(err.code).toBe('ERR_INVALID_OPTION')
    expect(err.message).toContain('already served by fake acmereg:')
  })

  it('an unknown scheme names the known ones and how to add one', async () => {
    const err = await failure(() => createApp({ broker: 'nosuch://x' }).connect())
    expect(err.code).toBe('ERR_INVALID_OPTION')
    expect(err.message).toContain('unknown scheme "nosuch:"')
    expect(err.message).toContain('redis:')
    expect(err.message).toContain('adapters')
  })

  it('a malformed adapter is refused naming what is wrong', async () => {
    const bad = [
      [{ schemes: ['x:'], createBroker: () => null }, 'name'],
      [{ name: 'n', schemes: [], createBroker: () => null }, 'schemes'],
      [
        { name: 'n', schemes: ['MySQL'], createBroker: () => null },
        'must be lower case and end with a colon',
      ],
      [{ name: 'n', schemes: ['x:'] }, 'neither createBroker nor createResultBackend'],
    ] as const
    for (const [adapter, words] of bad) {
      const err = await failure(() => registerAdapter(adapter as never))
      expect(err.code, JSON.stringify(adapter)).toBe('ERR_INVALID_OPTION')
      expect(err.message).toContain(words)
    }
    const notAdapter = await failure(() => createApp({ broker: 'memory://', adapters: [42 as never] }))
    expect(notAdapter.code).toBe('ERR_INVALID_OPTION')
    expect(notAdapter.message).toContain('adapters')
  })

  it('a broker-only adapter used as a backend says so', async () => {
    const adapter = defineAdapter({
      name: 'broker-only',
      schemes: ['bonly:'],
      createBroker: () => new MemoryBroker({ url: 'memory://bonly' }),
    })
    const err = await failure(() =>
      createApp({ broker: 'memory://', backend: 'bonly://x', adapters: [adapter] }).connect(),
    )
    expect(err.code).toBe('ERR_INVALID_OPTION')
    expect(err.message).toContain('broker-only has no result backend')
  })
})
