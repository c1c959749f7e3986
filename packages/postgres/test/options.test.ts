import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { createBroker, createResultBackend, PostgresBroker, PostgresResultBackend } from '../src/index.js'

function codeOf(fn: () => unknown): { code?: string; option?: string; message: string } {
  try {
    fn()
  } catch (err) {
    return err as { code?: string; option?: string; message: string }
  }
  throw new Error('expected a throw')
}

describe('options', () => {
  it('factories accept postgres:// and postgresql:// and do not connect', async () => {
    const broker = createBroker('postgres://nobody:secret@127.0.0.1:1/none')
    const backend = createResultBackend('postgresql://nobody@127.0.0.1:1/none?schema=other')
    expect(broker.name).toBe('postgres')
    expect(backend.capabilities.pushWait).toBe(true)
    await broker.close()
    await backend.close()
  })

  it('rejects other schemes, bad schema names and unknown options, naming the option', () => {
    const wrongScheme = codeOf(() => new PostgresBroker({ url: 'redis://user:hunter2@127.0.0.1' }))
    expect(wrongScheme.code).toBe('ERR_INVALID_OPTION')
    expect(wrongScheme.option).toBe('url')
    expect(wrongScheme.message).not.toContain('hunter2')

    for (const schema of ['Errand', 'a-b', 'x"; DROP TABLE y; --', '', 'a'.repeat(41)]) {
      const err = codeOf(() => new PostgresBroker({ url: 'postgres://127.0.0.1/test', schema }))
      expect(err.code).toBe('ERR_INVALID_OPTION')
      expect(err.option).toBe('schema')
    }
    const inUrl = codeOf(() => new PostgresBroker({ url: 'postgres://127.0.0.1/test?schema=Bad-Name' }))
    expect(inUrl.option).toBe('schema')

    const unknown = codeOf(
      () => new PostgresBroker({ url: 'postgres://127.0.0.1/test', leaseMS: 5 } as never),
    )
    expect(unknown.code).toBe('ERR_INVALID_OPTION')
    expect(unknown.option).toBe('leaseMS')

    const wrongType = codeOf(
      () => new PostgresResultBackend({ url: 'postgres://127.0.0.1/test', cleanupIntervalMs: -1 }),
    )
    expect(wrongType.option).toBe('cleanupIntervalMs')

    const both = codeOf(() => new PostgresBroker({ url: 'postgres://127.0.0.1/test', pool: new pg.Pool() }))
    expect(both.code).toBe('ERR_INVALID_OPTION')
    const neither = codeOf(() => new PostgresBroker({}))
    expect(neither.code).toBe('ERR_INVALID_OPTION')
  })

  it("URL parameters: ours are read, pg's pass through, anything else is ERR_INVALID_OPTION naming it", () => {
    const typo = codeOf(() => new PostgresBroker({ url: 'postgres://app:hunter2@127.0.0.1/test?shema=x' }))
    expect(typo.code).toBe('ERR_INVALID_OPTION')
    expect(typo.option).toBe('shema')
    expect(typo.message).not.toContain('hunter2')
    const twice = codeOf(() => new PostgresBroker({ url: 'postgres://127.0.0.1/test?schema=a&schema=b' }))
    expect(twice.option).toBe('schema')
    const broker = new PostgresBroker({
      url: 'postgres://127.0.0.1/test?schema=other&application_name=x&sslmode=disable',
    })
    expect(broker.schema).toBe('other')
  })

  it('a server that cannot be reached is ERR_CONNECTION, with the password masked', async () => {
    const broker = new PostgresBroker({
      url: 'postgres://app:hunter2@127.0.0.1:1/test',
      reconnectTimeoutMs: 0,
    })
    const err = (await broker.connect().catch((e: unknown) => e)) as { code?: string; message: string }
    expect(err.code).toBe('ERR_CONNECTION')
    expect(err.message).toContain('127.0.0.1:1')
    expect(err.message).not.toContain('hunter2')
    expect(err.message).not.toContain('app:')
    await broker.close()
  })

  it('honours sslmode from the URL', async () => {
    // The test server has no TLS: asking for it must fail, proving sslmode reached pg.
    const broker = new PostgresBroker({
      url: 'postgres://postgres@127.0.0.1:5432/test?sslmode=verify-full',
      reconnectTimeoutMs: 0,
      migrate: false,
    })
    const err = (await broker.connect().catch((e: unknown) => e)) as { code?: string; message: string }
    expect(err.code).toBe('ERR_CONNECTION')
    expect(err.message).toMatch(/SSL/i)
    await broker.close()
  })
})
