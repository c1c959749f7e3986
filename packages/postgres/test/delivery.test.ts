import { describe, expect, it } from 'vitest'
import { PgDelivery, type PgDeliveryHost } from '../src/delivery.js'
import type { JobStore } from '../src/store.js'

/** A consumer stand-in whose ack fails until told otherwise. */
function host() {
  const calls = { released: 0, forgotten: 0, acks: 0 }
  let failAck = true
  const h: PgDeliveryHost = {
    adapter: 'postgres',
    maxDelayMs: 1000,
    queue: 'q',
    store: {} as JobStore,
    assertOpen: () => undefined,
    released: () => {
      calls.released++
    },
    settleBudget: () => Number.POSITIVE_INFINITY,
    ack: async () => {
      calls.acks++
      if (failAck) throw new Error('connection lost')
    },
    forget: () => {
      calls.forgotten++
    },
  }
  return { h, calls, heal: () => (failAck = false) }
}

describe('postgres delivery on the kit', () => {
  it('a failed ack frees the slot once but stays held (given back at close); a later ack forgets it', async () => {
    const { h, calls, heal } = host()
    const d = new PgDelivery(h, '1', 1, new Uint8Array())
    await expect(d.ack()).rejects.toThrow('connection lost')
    expect(d.open).toBe(true)
    expect(calls).toEqual({ released: 1, forgotten: 0, acks: 1 })
    heal()
    await d.ack()
    expect(d.state).toBe('settled')
    expect(calls).toEqual({ released: 1, forgotten: 1, acks: 2 })
    await d.ack()
    expect(calls.acks).toBe(2)
  })
})
