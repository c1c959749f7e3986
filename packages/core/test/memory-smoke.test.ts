import { describe, expect, it } from 'vitest'
import { MemoryBroker, MemoryResultBackend, MemoryStore } from '../src/memory/index.js'

describe('memory smoke', () => {
  it('round trip', async () => {
    const store = new MemoryStore()
    const broker = new MemoryBroker({ store })
    await broker.connect()
    const got = new Promise<string>((resolve) => {
      void broker.consume(
        'q',
        (d) => {
          void d.ack()
          resolve(new TextDecoder().decode(d.body))
        },
        { prefetch: 1 },
      )
    })
    await broker.publish('q', [{ body: new TextEncoder().encode('hé') }])
    expect(await got).toBe('hé')
    await broker.close()
    const backend = new MemoryResultBackend({ store })
    const wait = backend.waitFor('x', { signal: new AbortController().signal })
    await backend.setState({ id: 'x', state: 'SUCCESS', result: 1 }, { ttlMs: 1000 })
    expect((await wait).result).toBe(1)
    await backend.close()
  })
})
