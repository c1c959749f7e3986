import { describe, expect, it } from 'vitest'
import { type Broker, brokerCapabilities, type OutgoingMessage } from '../src/broker.js'
import { Publisher } from '../src/dispatch-publish.js'
import { decodeEnvelope, type Envelope } from '../src/envelope.js'

const env = (id: string, queue = 'q', extra: Partial<Envelope> = {}): Envelope => ({
  v: 1,
  id,
  task: 't',
  queue,
  attempt: 1,
  createdAt: 1,
  ...extra,
})

/** A broker that records its publish calls (only what Publisher uses). */
function recorder(maxPriority = 9) {
  const calls: { queue: string; ids: string[] }[] = []
  const broker = {
    name: 'rec',
    capabilities: brokerCapabilities({ maxPriority, maxDelayMs: 1000, maxMessageBytes: 10_000 }),
    publish: async (queue: string, messages: readonly OutgoingMessage[]) => {
      calls.push({ queue, ids: messages.map((m) => decodeEnvelope(m.body).id) })
    },
  } as unknown as Broker
  return { broker, calls }
}

describe('Publisher', () => {
  it('one envelope: one publish call of one message', async () => {
    const { broker, calls } = recorder()
    await new Publisher(broker, 2, []).publish([env('a')])
    expect(calls).toEqual([{ queue: 'q', ids: ['a'] }])
  })

  it('groups by queue and cuts each queue into chunks, in order', async () => {
    const { broker, calls } = recorder()
    await new Publisher(broker, 2, []).publish([env('a'), env('b', 'r'), env('c'), env('d'), env('e')])
    expect(calls).toEqual([
      { queue: 'q', ids: ['a', 'c'] },
      { queue: 'r', ids: ['b'] },
      { queue: 'q', ids: ['d', 'e'] },
    ])
  })

  it('goes through the target when given, never the broker', async () => {
    const { broker, calls } = recorder()
    const seen: string[] = []
    const target = async (queue: string, messages: readonly OutgoingMessage[]) => {
      seen.push(`${queue}:${messages.length}`)
    }
    const p = new Publisher(broker, 10, [])
    await p.publish([env('a')], target)
    await p.publish([env('b'), env('c', 'r')], target)
    expect(seen).toEqual(['q:1', 'q:1', 'r:1'])
    expect(calls).toEqual([])
  })

  it('publishes nothing when one envelope of the call cannot go (capabilities checked first)', async () => {
    const { broker, calls } = recorder(0)
    const p = new Publisher(broker, 10, [])
    await expect(p.publish([env('a'), env('b', 'q', { priority: 3 })])).rejects.toMatchObject({
      code: 'ERR_NOT_SUPPORTED',
    })
    await expect(p.publish([env('c', 'q', { priority: 3 })])).rejects.toMatchObject({
      code: 'ERR_NOT_SUPPORTED',
    })
    expect(calls).toEqual([])
  })

  it('a delay beyond maxDelayMs goes out as the longest the broker holds', async () => {
    const bodies: OutgoingMessage[] = []
    const broker = {
      name: 'rec',
      capabilities: brokerCapabilities({ maxDelayMs: 1000 }),
      publish: async (_q: string, messages: readonly OutgoingMessage[]) => void bodies.push(...messages),
    } as unknown as Broker
    await new Publisher(broker, 10, []).publish([env('a', 'q', { eta: Date.now() + 60_000 })])
    expect(bodies[0]?.delayMs).toBe(1000)
    expect(bodies[0]?.dedupId).toBe('a:1')
  })
})
