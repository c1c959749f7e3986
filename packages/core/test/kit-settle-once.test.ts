import { describe, expect, it } from 'vitest'
import { ClosedError, type DeadLetterInfo, DeliveryLostError } from '../src/index.js'
import {
  type DeliveryHost,
  LeasedDelivery,
  type ReleaseReason,
  type SettleOnceDelivery,
} from '../src/kit/index.js'
import { watchLost } from '../src/kit/settle-once.js'

/** A leased delivery whose store calls are scripted by the test. */
class Scripted extends LeasedDelivery {
  calls: string[] = []
  fail = false
  held = true
  gate: Promise<void> | undefined
  constructor(host: DeliveryHost) {
    super(host, { messageId: 'm1', body: new Uint8Array([1]), attempt: 1 })
  }
  async #call(name: string): Promise<void> {
    this.calls.push(name)
    if (this.gate) await this.gate
    if (this.fail) throw new Error(`${name} failed`)
  }
  protected storeAck() {
    return this.#call('ack')
  }
  protected storeNack(delayMs: number) {
    return this.#call(`nack:${delayMs}`)
  }
  protected storeDeadLetter(info: DeadLetterInfo) {
    return this.#call(`dead:${info.reason}`)
  }
  protected async storeExtend(ms: number) {
    this.calls.push(`extend:${ms}`)
    return this.held
  }
  protected lostReason() {
    return new DeliveryLostError('lease gone', { adapter: 'fake' })
  }
}

function setup() {
  const released: SettleOnceDelivery[] = []
  const why: ReleaseReason[] = []
  const host = {
    adapter: 'fake',
    maxDelayMs: 1000,
    closed: false,
    assertOpen(what: string) {
      if (host.closed) throw new ClosedError(`cannot ${what}: closed`)
    },
    released: (d: SettleOnceDelivery, reason: ReleaseReason) => {
      released.push(d)
      why.push(reason)
    },
  }
  return { host, released, why, d: new Scripted(host) }
}

describe('SettleOnceDelivery / LeasedDelivery (the kit)', () => {
  it('the first settle wins; later settles do nothing; the slot is released once', async () => {
    const { d, released } = setup()
    await d.ack()
    await d.nack()
    await d.deadLetter({ reason: 'rejected' })
    expect(d.calls).toEqual(['ack'])
    expect(d.state).toBe('settled')
    expect(released).toHaveLength(1)
  })

  it('a settle called while one is on its way shares its outcome', async () => {
    const { d } = setup()
    let open!: () => void
    d.gate = new Promise((r) => {
      open = r
    })
    const a = d.ack()
    const b = d.nack()
    expect(d.state).toBe('settling')
    open()
    await Promise.all([a, b])
    expect(d.calls).toEqual(['ack'])
  })

  it('a failed settle leaves it open for a retry and releases the slot at once, exactly once', async () => {
    const { d, released } = setup()
    d.fail = true
    await expect(d.ack()).rejects.toThrow('ack failed')
    expect(d.state).toBe('open')
    expect(released).toHaveLength(1)
    d.fail = false
    await d.nack({ delayMs: 10 })
    expect(d.calls).toEqual(['ack', 'nack:10'])
    expect(d.state).toBe('settled')
    expect(released, 'released once, not again when the retry settles').toHaveLength(1)
  })

  it('arguments are checked first, whatever the state', async () => {
    const { d } = setup()
    await d.ack()
    await expect(d.nack({ delayMs: -1 })).rejects.toThrow(TypeError)
    await expect(d.nack({ delayMs: 5000 })).rejects.toMatchObject({ code: 'ERR_NOT_SUPPORTED' })
    await expect(d.deadLetter(null as unknown as DeadLetterInfo)).rejects.toThrow(TypeError)
    await expect(d.extend(0)).rejects.toThrow(TypeError)
    await expect(d.extend(Number.NaN)).rejects.toThrow(TypeError)
  })

  it('every call after close rejects with ERR_CLOSED, settled or not', async () => {
    const { d, host } = setup()
    await d.ack()
    host.closed = true
    for (const call of [
      () => d.ack(),
      () => d.nack(),
      () => d.deadLetter({ reason: 'rejected' }),
      () => d.extend(100),
    ]) {
      await expect(call()).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    }
  })

  it('extend after settle resolves without a store call; a lease found gone marks it lost', async () => {
    const { d, released } = setup()
    await d.extend(99.2)
    expect(d.calls).toEqual(['extend:100'])
    d.held = false
    await d.extend(100)
    expect(d.state).toBe('lost')
    expect(d.lost.aborted).toBe(true)
    expect(d.lost.reason).toMatchObject({ code: 'ERR_LOST' })
    expect(released).toHaveLength(1)
    await d.ack()
    expect(d.calls, 'a settle after lost does nothing').toEqual(['extend:100', 'extend:100'])
    const other = setup()
    await other.d.ack()
    await other.d.extend(100)
    expect(other.d.calls).toEqual(['ack'])
  })

  it('markLost after a settle started does nothing; release gives back an open delivery once', () => {
    const { d, released } = setup()
    d.gate = new Promise(() => undefined)
    void d.ack()
    expect(d.markLost(new DeliveryLostError('x', { adapter: 'fake' }))).toBe(false)
    expect(d.lost.aborted).toBe(false)
    const other = setup()
    expect(other.d.release()).toBe(true)
    expect(other.d.release()).toBe(false)
    expect(other.d.state).toBe('settled')
    expect(other.released).toHaveLength(1)
    expect(released).toHaveLength(0)
  })

  it('released says why: settled, failed, lost or released', async () => {
    const settled = setup()
    await settled.d.ack()
    expect(settled.why).toEqual(['settled'])
    const failed = setup()
    failed.d.fail = true
    await expect(failed.d.nack()).rejects.toThrow('nack:0 failed')
    expect(failed.why).toEqual(['failed'])
    const lost = setup()
    lost.d.markLost(new DeliveryLostError('gone'))
    expect(lost.why).toEqual(['lost'])
    const given = setup()
    given.d.release()
    expect(given.why).toEqual(['released'])
  })

  it('lost: read before or after markLost, the signal aborts with the reason', () => {
    const early = setup().d
    const signal = early.lost
    expect(signal.aborted).toBe(false)
    expect(early.lost, 'the same signal every read').toBe(signal)
    const reason = new DeliveryLostError('gone')
    early.markLost(reason)
    expect(signal.aborted).toBe(true)
    expect(signal.reason).toBe(reason)
    const late = setup().d
    late.markLost(reason)
    expect(late.lost.aborted).toBe(true)
    expect(late.lost.reason).toBe(reason)
  })

  it('watchLost: one watcher called once with the reason, at once if already lost; undefined stops', () => {
    const { d } = setup()
    const seen: unknown[] = []
    expect(watchLost(d, (r) => seen.push(r))).toBe(true)
    const reason = new DeliveryLostError('gone')
    d.markLost(reason)
    d.markLost(new DeliveryLostError('again'))
    expect(seen).toEqual([reason])
    expect(d.lost.reason).toBe(reason)
    const after: unknown[] = []
    expect(watchLost(d, (r) => after.push(r))).toBe(true)
    expect(after).toEqual([reason])
    const stopped = setup().d
    const none: unknown[] = []
    watchLost(stopped, (r) => none.push(r))
    watchLost(stopped, undefined)
    stopped.markLost(reason)
    expect(none).toEqual([])
    expect(stopped.lost.aborted).toBe(true)
  })

  it('watchLost: a lease found gone during a settle calls the watcher too', async () => {
    class LostOnAck extends Scripted {
      protected override async storeAck() {
        this.lostDuringSettle(new DeliveryLostError('gone at ack'))
      }
    }
    const { host } = setup()
    const d = new LostOnAck(host)
    const seen: unknown[] = []
    watchLost(d, (r) => seen.push(r))
    await d.ack()
    expect(seen).toHaveLength(1)
    expect(d.lost.aborted).toBe(true)
  })

  it('a wrapper copying its fields (Object.create) reads the wrapped signal, or its own when it sets one', () => {
    const { d } = setup()
    const plain = Object.assign(Object.create(d), d) as SettleOnceDelivery
    expect(
      watchLost(plain, () => {}),
      'a wrapper is watched through its signal',
    ).toBe(false)
    expect(plain.lost).toBe(d.lost)
    const own = new AbortController()
    const replaced = Object.assign(Object.create(d), d, { lost: own.signal }) as SettleOnceDelivery
    expect(replaced.lost).toBe(own.signal)
    expect(d.lost).not.toBe(own.signal)
    d.markLost(new DeliveryLostError('gone'))
    expect(plain.lost.aborted).toBe(true)
    expect(replaced.lost.aborted).toBe(false)
    const set = setup().d
    ;(set as { lost: AbortSignal }).lost = own.signal
    expect(set.lost).toBe(own.signal)
    expect(
      watchLost(set, () => {}),
      'a replaced signal is watched as a signal',
    ).toBe(false)
  })
})
