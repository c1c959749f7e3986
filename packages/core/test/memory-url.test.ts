import { describe, expect, it } from 'vitest'
import {
  createMemoryBroker,
  createMemoryResultBackend,
  MemoryBroker,
  MemoryResultBackend,
  MemoryStore,
  parseMemoryUrl,
} from '../src/memory/index.js'

function thrown(fn: () => unknown): { code?: string; option?: string; message: string } {
  try {
    fn()
  } catch (err) {
    return err as { code?: string; option?: string; message: string }
  }
  throw new Error('expected a throw')
}

describe('memory URLs', () => {
  it('maps memory:, memory:// and memory://<name> to store names', () => {
    expect(parseMemoryUrl('memory:')).toBe('default')
    expect(parseMemoryUrl('memory://')).toBe('default')
    expect(parseMemoryUrl('memory:///')).toBe('default')
    expect(parseMemoryUrl('memory://jobs')).toBe('jobs')
    expect(parseMemoryUrl('memory://Jobs/')).toBe('Jobs')
    expect(parseMemoryUrl('MEMORY://a%20b')).toBe('a b')
  })

  it('rejects other URLs with ERR_INVALID_OPTION naming url, without credentials', () => {
    for (const url of ['redis://x', 'memory://a/b', 'memory://a?x=1', 'memory', 'memory://%zz']) {
      const err = thrown(() => parseMemoryUrl(url))
      expect(err.code, url).toBe('ERR_INVALID_OPTION')
      expect(err.option).toBe('url')
    }
    const err = thrown(() => parseMemoryUrl('redis://user:hunter2@host'))
    expect(err.message).not.toContain('hunter2')
  })

  it('opens the process-wide store a URL or a name names', async () => {
    const broker = createMemoryBroker('memory://url-test')
    const backend = createMemoryResultBackend('memory://url-test')
    const byName = new MemoryBroker({ name: 'url-test' })
    expect(broker.store).toBe(MemoryStore.named('url-test'))
    expect(backend.store).toBe(broker.store)
    expect(byName.store).toBe(broker.store)
    expect(new MemoryBroker().store).toBe(MemoryStore.named('default'))
    expect(new MemoryResultBackend({ url: 'memory://' }).store).toBe(MemoryStore.named())
    expect(new MemoryBroker({ store: new MemoryStore() }).store).not.toBe(MemoryStore.named())
    await Promise.all([broker.close(), backend.close(), byName.close()])
  })

  it('validates options and names the bad field', () => {
    const cases: [unknown, string][] = [
      [{ leaseMs: 0 }, 'leaseMs'],
      [{ leaseMs: 'x' }, 'leaseMs'],
      [{ capabilities: { maxPriority: -1 } }, 'capabilities.maxPriority'],
      [{ capabilities: { bogus: 1 } }, 'capabilities.bogus'],
      [{ store: {} }, 'store'],
      [{ name: '' }, 'name'],
      [{ name: 'a', store: new MemoryStore() }, 'store'],
      [{ nme: 'typo' }, 'nme'],
    ]
    for (const [options, field] of cases) {
      const err = thrown(() => new MemoryBroker(options as ConstructorParameters<typeof MemoryBroker>[0]))
      expect(err.code, JSON.stringify(options)).toBe('ERR_INVALID_OPTION')
      expect(err.option, JSON.stringify(options)).toBe(field)
    }
    const err = thrown(() => new MemoryResultBackend({ leaseMs: 1 } as never))
    expect(err.code).toBe('ERR_INVALID_OPTION')
  })
})
