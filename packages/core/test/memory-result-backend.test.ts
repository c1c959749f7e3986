import { afterEach, describe, expect, it } from 'vitest'
import { MemoryResultBackend, MemoryStore } from '../src/memory/index.js'

const TTL = { ttlMs: 60_000 }
const open: MemoryResultBackend[] = []
function backend(store = new MemoryStore()) {
  const b = new MemoryResultBackend({ store })
  open.push(b)
  return b
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()))
})

describe('MemoryResultBackend', () => {
  it('declares pushed waits', () => {
    expect(backend().capabilities.pushWait).toBe(true)
  })

  it('stores JSON: undefined fields vanish, reads are copies', async () => {
    const b = backend()
    const result = { a: 1, gone: undefined, at: new Date(0) }
    await b.setState({ id: 't', state: 'SUCCESS', result }, TTL)
    const read = (await b.getState('t'))!
    expect(read.result).toEqual({ a: 1, at: '1970-01-01T00:00:00.000Z' })
    ;(read.result as { a: number }).a = 2
    expect(((await b.getState('t'))!.result as { a: number }).a).toBe(1)
  })

  it('rejects its pending waitFor calls with ERR_CLOSED when it closes', async () => {
    const store = new MemoryStore()
    const b = backend(store)
    const other = backend(store)
    const waiting = b.waitFor('t', { signal: new AbortController().signal })
    const elsewhere = other.waitFor('t', { signal: new AbortController().signal })
    await b.close()
    await expect(waiting).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    await other.setState({ id: 't', state: 'SUCCESS' }, TTL)
    await expect(elsewhere).resolves.toMatchObject({ state: 'SUCCESS' })
  })

  it('forgets a waiter whose signal aborted', async () => {
    const b = backend()
    const controller = new AbortController()
    const waiting = b.waitFor('t', { signal: controller.signal })
    controller.abort()
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' })
    await b.setState({ id: 't', state: 'SUCCESS' }, TTL)
  })

  it('rejects malformed arguments with TypeError', async () => {
    const b = backend()
    await expect(b.setState({ id: '', state: 'SUCCESS' }, TTL)).rejects.toBeInstanceOf(TypeError)
    await expect(b.setState({ id: 't', state: 'DONE' as never }, TTL)).rejects.toBeInstanceOf(TypeError)
    await expect(b.setState({ id: 't', state: 'SUCCESS' }, { ttlMs: 0 })).rejects.toBeInstanceOf(TypeError)
    await expect(b.completeGroupMember('g', 3, 3, { ok: true, value: 1 }, TTL)).rejects.toBeInstanceOf(
      TypeError,
    )
    await b.completeGroupMember('g', 0, 3, { ok: true, value: 1 }, TTL)
    await expect(b.completeGroupMember('g', 1, 4, { ok: true, value: 1 }, TTL)).rejects.toBeInstanceOf(
      TypeError,
    )
    await expect(b.setIfAbsent('k', 1 as never, 10)).rejects.toBeInstanceOf(TypeError)
  })
})
