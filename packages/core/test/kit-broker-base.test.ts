import { describe, expect, it } from 'vitest'
import { brokerCapabilities, type Consumer, type DeadLetter, type QueueStats } from '../src/index.js'
import { BrokerBase, type CheckedConsumeOptions } from '../src/kit/index.js'
import type { CheckedMessage } from '../src/outgoing.js'

/** A broker whose store steps only record what reached them. */
class Recording extends BrokerBase {
  readonly name = 'rec'
  readonly capabilities = brokerCapabilities({ maxDelayMs: 1000, maxPriority: 3, maxMessageBytes: 8 })
  opens = 0
  shutdowns = 0
  failOpen = false
  seen: unknown[] = []
  protected async open() {
    this.opens++
    await new Promise((r) => setTimeout(r, 5))
    if (this.failOpen) throw new Error('refused')
  }
  protected async shutdown() {
    this.shutdowns++
  }
  protected async publishChecked(queue: string, messages: readonly CheckedMessage[]) {
    this.seen.push([queue, messages.map((m) => [m.delayMs, m.priority])])
  }
  protected async consumeChecked(_q: string, _h: unknown, options: CheckedConsumeOptions): Promise<Consumer> {
    this.seen.push(options)
    return { cancel: async () => undefined }
  }
  protected async queueStats(): Promise<QueueStats> {
    return { ready: 0, delayed: 0, inFlight: 0, dead: 0 }
  }
  protected async purgeQueue() {
    return 0
  }
  protected async deadLetters(_q: string, limit: number): Promise<DeadLetter[]> {
    this.seen.push(limit)
    return []
  }
  protected async requeueDead(_q: string, ids: readonly string[] | undefined) {
    this.seen.push(ids)
    return 0
  }
  protected async purgeDead() {
    return 0
  }
}

const body = new Uint8Array([1])

describe('BrokerBase (the kit)', () => {
  it('connects once for concurrent calls, retries after a failed connect, closes once', async () => {
    const b = new Recording()
    b.failOpen = true
    await expect(Promise.all([b.connect(), b.connect()])).rejects.toThrow('refused')
    expect(b.opens).toBe(1)
    b.failOpen = false
    await Promise.all([b.connect(), b.connect()])
    await b.connect()
    expect(b.opens).toBe(2)
    await Promise.all([b.close(), b.close()])
    expect(b.shutdowns).toBe(1)
  })

  it('after close every call rejects with ERR_CLOSED naming the call', async () => {
    const b = new Recording()
    await b.connect()
    await b.close()
    const calls: [string, () => Promise<unknown>][] = [
      ['connect', () => b.connect()],
      ['publish', () => b.publish('q', [{ body }])],
      ['consume', () => b.consume('q', () => undefined, { prefetch: 1 })],
      ['stats', () => b.stats('q')],
      ['purge', () => b.purge('q')],
      ['listDeadLetters', () => b.listDeadLetters('q')],
      ['requeueDeadLetters', () => b.requeueDeadLetters('q')],
      ['purgeDeadLetters', () => b.purgeDeadLetters('q')],
    ]
    for (const [name, call] of calls) {
      await expect(call(), name).rejects.toMatchObject({
        code: 'ERR_CLOSED',
        message: expect.stringContaining(name),
      })
    }
  })

  it('checks every argument before the store sees it, naming what is wrong', async () => {
    const b = new Recording()
    await b.connect()
    await b.publish('q', [{ body, delayMs: 10.2, priority: 3 }])
    await b.publish('q', [])
    expect(b.seen).toEqual([['q', [[11, 3]]]])
    await expect(b.publish('', [{ body }])).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
      option: 'queue',
    })
    await expect(b.publish('q', [{ body: 'x' as unknown as Uint8Array }])).rejects.toThrow(TypeError)
    await expect(b.publish('q', [{ body: new Uint8Array(9) }])).rejects.toMatchObject({
      code: 'ERR_PAYLOAD_TOO_LARGE',
    })
    await expect(b.publish('q', [{ body, delayMs: 5000 }])).rejects.toMatchObject({
      code: 'ERR_NOT_SUPPORTED',
    })
    await expect(b.publish('q', [{ body, priority: 4 }])).rejects.toMatchObject({ code: 'ERR_NOT_SUPPORTED' })
    await expect(b.consume('q', () => undefined, { prefetch: 0 })).rejects.toMatchObject({
      option: 'prefetch',
    })
    await expect(b.consume('q', () => undefined, { prefetch: 1, leaseMs: -5 })).rejects.toMatchObject({
      option: 'leaseMs',
    })
    await b.consume('q', () => undefined, { prefetch: 2, leaseMs: 99.5 })
    expect(b.seen.at(-1)).toEqual({ prefetch: 2, leaseMs: 100 })
    await expect(b.listDeadLetters('q', { limit: 0 })).rejects.toMatchObject({ option: 'limit' })
    await expect(b.requeueDeadLetters('q', ['a', 3 as unknown as string])).rejects.toMatchObject({
      option: 'ids',
    })
    await b.requeueDeadLetters('q', ['a'])
    expect(b.seen.at(-1)).toEqual(['a'])
    await b.listDeadLetters('q', { limit: 50_000 })
    expect(b.seen.at(-1), 'no upper bound on a dead-letter page').toBe(50_000)
    await b.close()
  })

  it("queueProblem: the adapter's rule runs first, with its own message, then the wire's", async () => {
    class Strict extends Recording {
      protected override queueProblem(queue: string) {
        return queue.includes('!') ? `queue "${queue}" has a "!"` : undefined
      }
    }
    const b = new Strict()
    await expect(b.publish('a!', [{ body }])).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
      option: 'queue',
      message: expect.stringContaining('has a "!"'),
    })
    await expect(b.stats('x'.repeat(201))).rejects.toMatchObject({ option: 'queue' })
    await expect(
      b.stats(7 as unknown as string),
      'a non-string never reaches the hook',
    ).rejects.toMatchObject({
      option: 'queue',
    })
    await expect(b.stats('ok')).resolves.toBeDefined()
  })

  it('checkPublish runs the checks of publish for a variant and returns the checked messages', async () => {
    class Variant extends Recording {
      publishOther(queue: string, messages: readonly { body: Uint8Array; delayMs?: number }[]) {
        return this.checkPublish('publishOther', queue, messages)
      }
    }
    const b = new Variant()
    expect(b.publishOther('q', [{ body, delayMs: 1.5 }]).map((m) => m.delayMs)).toEqual([2])
    expect(b.publishOther('q', [])).toEqual([])
    expect(() => b.publishOther('', [{ body }])).toThrow(expect.objectContaining({ option: 'queue' }))
    expect(() => b.publishOther('q', [{ body: new Uint8Array(9) }])).toThrow(
      expect.objectContaining({ code: 'ERR_PAYLOAD_TOO_LARGE' }),
    )
    await b.close()
    expect(() => b.publishOther('q', [{ body }])).toThrow(/cannot publishOther: the broker is closed/)
  })
})
