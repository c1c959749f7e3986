import { describe, expect, it } from 'vitest'
import { Batcher, type BatchOutcome, batchOk } from '../src/kit/index.js'

function recording<T>(
  answer: (items: readonly T[]) => BatchOutcome<string>[] = (items) => batchOk(items.map(String)),
) {
  const batches: T[][] = []
  const flush = async (items: readonly T[]) => {
    batches.push([...items])
    return answer(items)
  }
  return { batches, flush }
}

describe('Batcher (the kit)', () => {
  it('calls of one turn go out as one batch, each resolving with its own result', async () => {
    const { batches, flush } = recording<number>()
    const b = new Batcher({ flush })
    const results = await Promise.all([1, 2, 3].map((n) => b.add(n)))
    expect(results).toEqual(['1', '2', '3'])
    expect(batches).toEqual([[1, 2, 3]])
  })

  it('maxItems splits in order; maxBytes sends a batch before the item that would overflow it', async () => {
    const byCount = recording<number>()
    const b = new Batcher({ flush: byCount.flush, maxItems: 2 })
    await Promise.all([1, 2, 3, 4, 5].map((n) => b.add(n)))
    expect(byCount.batches).toEqual([[1, 2], [3, 4], [5]])
    const bySize = recording<number>()
    const c = new Batcher({ flush: bySize.flush, maxBytes: 10 })
    await Promise.all([6, 3, 5, 9].map((n) => c.add(n, n)))
    expect(bySize.batches).toEqual([[6, 3], [5], [9]])
  })

  it('one outcome per item: a failed item rejects alone, a thrown flush rejects its batch', async () => {
    const partial = new Batcher<number, string>({
      flush: async (items) =>
        items.map((n) => (n === 2 ? { ok: false, error: new Error('two') } : { ok: true, value: `${n}` })),
    })
    const settled = await Promise.allSettled([1, 2, 3].map((n) => partial.add(n)))
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    const broken = new Batcher<number, string>({
      flush: async () => {
        throw new Error('down')
      },
    })
    await expect(Promise.all([broken.add(1), broken.add(2)])).rejects.toThrow('down')
    await broken.drained()
  })

  it('maxInFlight holds later items until a batch returns, then sends them together', async () => {
    const batches: number[][] = []
    let release!: () => void
    const first = new Promise<void>((r) => {
      release = r
    })
    const b = new Batcher<number, number>({
      maxInFlight: 1,
      flush: async (items) => {
        batches.push([...items])
        if (batches.length === 1) await first
        return batchOk(items)
      },
    })
    const a = b.add(1)
    await new Promise((r) => setImmediate(r))
    const rest = [b.add(2), b.add(3)]
    await new Promise((r) => setTimeout(r, 20))
    expect(batches, 'nothing more leaves while one batch is on its way').toEqual([[1]])
    release()
    await Promise.all([a, ...rest])
    expect(batches).toEqual([[1], [2, 3]])
  })

  it('items with one key never share a batch and keep their order', async () => {
    const { batches, flush } = recording<{ k: string; n: number }>((items) =>
      batchOk(items.map((i) => `${i.k}${i.n}`)),
    )
    const b = new Batcher({ flush, key: (i) => i.k })
    await Promise.all([
      b.add({ k: 'a', n: 1 }),
      b.add({ k: 'a', n: 2 }),
      b.add({ k: 'b', n: 1 }),
      b.add({ k: 'a', n: 3 }),
    ])
    expect(batches.map((batch) => batch.map((i) => `${i.k}${i.n}`))).toEqual([['a1', 'b1'], ['a2'], ['a3']])
  })

  it('lingerMs waits for company; add(…, now) cuts the linger short', async () => {
    const { batches, flush } = recording<number>()
    const b = new Batcher({ flush, lingerMs: 10_000 })
    const one = b.add(1)
    await new Promise((r) => setTimeout(r, 20))
    expect(batches).toEqual([])
    await Promise.all([one, b.add(2, 0, true)])
    expect(batches).toEqual([[1, 2]])
  })

  it('flush sends what waits for its linger at once and resolves when everything is back', async () => {
    const { batches, flush } = recording<number>()
    const b = new Batcher({ flush, lingerMs: 10_000, maxItems: 2, maxInFlight: 1 })
    const items = [b.add(1), b.add(2), b.add(3)]
    expect(batches, 'a full batch goes out; the third item lingers').toEqual([[1, 2]])
    const t0 = Date.now()
    await b.flush()
    expect(Date.now() - t0).toBeLessThan(1000)
    expect(batches).toEqual([[1, 2], [3]])
    await expect(Promise.all(items)).resolves.toEqual(['1', '2', '3'])
    await b.flush()
    expect(batches, 'nothing left to send').toHaveLength(2)
  })
})
