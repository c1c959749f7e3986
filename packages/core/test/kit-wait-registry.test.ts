import { describe, expect, it } from 'vitest'
import { WaitRegistry } from '../src/kit/index.js'

describe('WaitRegistry', () => {
  it('settles every waiter of an id at once and watches each id while it has waiters', async () => {
    const seen: string[] = []
    const reg = new WaitRegistry<number>({
      watch: (id) => seen.push(`watch ${id}`),
      unwatch: (id) => seen.push(`unwatch ${id} (${reg.size} left)`),
    })
    const a1 = reg.wait('a')
    const a2 = reg.wait('a')
    const b = reg.wait('b')
    expect(reg.ids()).toEqual(['a', 'b'])
    expect(reg.has('a')).toBe(true)
    reg.resolve('a', 1)
    reg.resolve('zzz', 9) // nobody waits: nothing happens
    expect(await a1).toBe(1)
    expect(await a2).toBe(1)
    expect(reg.has('a')).toBe(false)
    reg.reject('b', new Error('bad'))
    await expect(b).rejects.toThrow('bad')
    expect(seen).toEqual(['watch a', 'watch b', 'unwatch a (1 left)', 'unwatch b (0 left)'])
  })

  it('rejects an aborted waiter with the reason, alone, and unwatches with the last one', async () => {
    const unwatched: string[] = []
    const reg = new WaitRegistry<number>({ unwatch: (id) => unwatched.push(id) })
    const ac = new AbortController()
    const aborted = reg.wait('a', ac.signal)
    const other = reg.wait('a')
    const reason = new Error('stop')
    ac.abort(reason)
    await expect(aborted).rejects.toBe(reason)
    expect(unwatched).toEqual([])
    reg.resolve('a', 2)
    expect(await other).toBe(2)
    expect(unwatched).toEqual(['a'])
    await expect(reg.wait('b', ac.signal)).rejects.toBe(reason)
    expect(reg.has('b')).toBe(false)
  })

  it('closeAll rejects every waiter and every later wait with the close error', async () => {
    const reg = new WaitRegistry<number>()
    const pending = [reg.wait('a'), reg.wait('b'), reg.wait('b')]
    const closed = new Error('closed')
    reg.closeAll(closed)
    for (const p of pending) await expect(p).rejects.toBe(closed)
    expect(reg.closed).toBe(true)
    expect(reg.size).toBe(0)
    reg.closeAll(new Error('again'))
    await expect(reg.wait('c')).rejects.toBe(closed)
  })

  it('a watch hook that settles the id at once settles the new waiter', async () => {
    const reg: WaitRegistry<number> = new WaitRegistry<number>({ watch: (id) => reg.resolve(id, 7) })
    expect(await reg.wait('a')).toBe(7)
    expect(reg.size).toBe(0)
  })

  it('many waits on one signal share one abort listener, removed when the last settles', async () => {
    const reg = new WaitRegistry<number>()
    const ac = new AbortController()
    let added = 0
    let removed = 0
    const add = ac.signal.addEventListener.bind(ac.signal)
    const remove = ac.signal.removeEventListener.bind(ac.signal)
    ac.signal.addEventListener = ((...args: Parameters<typeof add>) => {
      added++
      add(...args)
    }) as typeof add
    ac.signal.removeEventListener = ((...args: Parameters<typeof remove>) => {
      removed++
      remove(...args)
    }) as typeof remove
    const waits = Array.from({ length: 20 }, (_, i) => reg.wait(`id${i}`, ac.signal))
    expect(added).toBe(1)
    for (let i = 0; i < 20; i++) reg.resolve(`id${i}`, i)
    expect(await Promise.all(waits)).toEqual(Array.from({ length: 20 }, (_, i) => i))
    expect(removed).toBe(1)
    const again = [reg.wait('x', ac.signal), reg.wait('y', ac.signal)]
    expect(added).toBe(2)
    const reason = new Error('stop')
    ac.abort(reason)
    for (const p of again) await expect(p).rejects.toBe(reason)
    expect(reg.size).toBe(0)
  })

  it('a settled waiter no longer listens to its signal', async () => {
    const reg = new WaitRegistry<number>()
    const ac = new AbortController()
    const p = reg.wait('a', ac.signal)
    reg.resolve('a', 3)
    ac.abort(new Error('late'))
    expect(await p).toBe(3)
  })
})
