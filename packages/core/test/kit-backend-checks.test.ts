import { describe, expect, it } from 'vitest'
import { MAX_FLOW_KEY_LENGTH } from '../src/index.js'
import { flowChecks, MAX_RESULT_KEY_LENGTH, resultChecks } from '../src/kit/index.js'

const TTL = { ttlMs: 1000 }

/** The TypeError `run` throws (fails the test when it does not throw one). */
function thrown(run: () => unknown): TypeError {
  try {
    run()
  } catch (err) {
    expect(err).toBeInstanceOf(TypeError)
    return err as TypeError
  }
  throw new Error('expected a TypeError')
}

describe('resultChecks', () => {
  it('returns the TTL in whole ms, rounded up', () => {
    expect(resultChecks.setState({ id: 't', state: 'SUCCESS' }, { ttlMs: 1.2 })).toBe(2)
    expect(resultChecks.groupMember('g', 0, 1, { ok: true, value: 1 }, { ttlMs: 5 })).toBe(5)
    expect(resultChecks.setIfAbsent('k', '', 0.5)).toBe(1)
  })

  it('names the method and the argument, without echoing a long value', () => {
    const long = 'x'.repeat(MAX_RESULT_KEY_LENGTH + 1)
    expect(thrown(() => resultChecks.id('getState', 'id', long)).message).toBe(
      `getState: id must be at most ${MAX_RESULT_KEY_LENGTH} characters, got a string of ${long.length} characters`,
    )
    expect(thrown(() => resultChecks.id('getState', 'id', '')).message).toMatch(
      /^getState: id must be a non-empty/,
    )
    expect(() => resultChecks.id('getState', 'id', 'x'.repeat(MAX_RESULT_KEY_LENGTH))).not.toThrow()
  })

  it('refuses a bad record, state or TTL', () => {
    expect(thrown(() => resultChecks.setState(null as never, TTL)).message).toMatch(/setState: record must/)
    expect(thrown(() => resultChecks.setState({ id: 3 } as never, TTL)).message).toMatch(/record\.id/)
    expect(thrown(() => resultChecks.setState({ id: 't', state: 'DONE' } as never, TTL)).message).toMatch(
      /record\.state must be a task state, got a string/,
    )
    for (const ttlMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, '5', undefined]) {
      expect(
        thrown(() => resultChecks.setState({ id: 't', state: 'SUCCESS' }, { ttlMs } as never)).message,
      ).toMatch(/setState: ttlMs/)
    }
    expect(
      thrown(() => resultChecks.setState({ id: 't', state: 'SUCCESS' }, undefined as never)).message,
    ).toMatch(/ttlMs/)
  })

  it('checks ids as an array of ids', () => {
    expect(() => resultChecks.ids('getStates', ['a', 'b'])).not.toThrow()
    expect(thrown(() => resultChecks.ids('getStates', 'a')).message).toMatch(
      /getStates: ids must be an array/,
    )
    expect(thrown(() => resultChecks.ids('getStates', ['a', ''])).message).toMatch(/getStates: ids\[\]/)
  })

  it('checks a group member: size, index within it, outcome', () => {
    const ok = { ok: true, value: 1 } as const
    expect(thrown(() => resultChecks.groupMember('', 0, 1, ok, TTL)).message).toMatch(/groupId/)
    expect(thrown(() => resultChecks.groupMember('g', 0, 0, ok, TTL)).message).toMatch(
      /size must be an integer >= 1/,
    )
    expect(thrown(() => resultChecks.groupMember('g', 0, 1.5, ok, TTL)).message).toMatch(/size/)
    expect(thrown(() => resultChecks.groupMember('g', 2, 2, ok, TTL)).message).toMatch(
      /index must be an integer in \[0, 2\)/,
    )
    expect(thrown(() => resultChecks.groupMember('g', -1, 2, ok, TTL)).message).toMatch(/index/)
    expect(thrown(() => resultChecks.groupMember('g', 0, 2, {} as never, TTL)).message).toMatch(/outcome/)
    expect(thrown(() => resultChecks.groupMember('g', 0, 2, ok, { ttlMs: 0 })).message).toMatch(
      /completeGroupMember: ttlMs/,
    )
  })

  it('checks claims and events', () => {
    expect(thrown(() => resultChecks.setIfAbsent('k', 1 as never, 10)).message).toMatch(
      /setIfAbsent: value must be a string/,
    )
    expect(thrown(() => resultChecks.events('e' as never)).message).toMatch(
      /publishEvents: events must be an array/,
    )
    expect(() => resultChecks.recentEvents('q', 0)).not.toThrow()
    expect(thrown(() => resultChecks.recentEvents('q', 1.5)).message).toMatch(/recentEvents: limit/)
    expect(thrown(() => resultChecks.recentEvents('', 1)).message).toMatch(/recentEvents: queue/)
  })
})

describe('flowChecks', () => {
  const long = 'k'.repeat(MAX_FLOW_KEY_LENGTH + 1)

  it('returns windows, leases and TTLs in whole ms', () => {
    expect(flowChecks.takeRate('k', 1, 10.1)).toBe(11)
    expect(flowChecks.acquireSlot('k', 'h', 2, 3)).toBe(3)
    expect(flowChecks.putValue('k', 'v', 0.1)).toBe(1)
    // No upper bound in the kit: a store cuts or refuses what its clock cannot hold.
    expect(flowChecks.takeRate('k', 1, Number.MAX_VALUE)).toBe(Number.MAX_VALUE)
  })

  it('refuses keys, holders and queues that are empty, not strings or too long', () => {
    expect(thrown(() => flowChecks.takeRate(long, 1, 1)).message).toMatch(
      new RegExp(`^takeRate: key must be at most ${MAX_FLOW_KEY_LENGTH} characters`),
    )
    expect(thrown(() => flowChecks.acquireSlot('k', long, 1, 1)).message).toMatch(
      /^acquireSlot: holder must be at most/,
    )
    expect(thrown(() => flowChecks.releaseSlot('k', 3 as never)).message).toMatch(
      /^releaseSlot: holder must be a non-empty string, got 3/,
    )
    expect(thrown(() => flowChecks.setPaused('', true)).message).toMatch(/^setPaused: queue/)
    expect(thrown(() => flowChecks.putValue(long, 'v', 1)).message).toMatch(/^putValue: key/)
    expect(() => flowChecks.setPaused('q'.repeat(MAX_FLOW_KEY_LENGTH), false)).not.toThrow()
  })

  it('refuses a bad max, duration, flag or value', () => {
    for (const max of [0, 1.5, -1, Number.NaN, 2 ** 60, '2']) {
      expect(thrown(() => flowChecks.takeRate('k', max as never, 1)).message).toMatch(/^takeRate: max/)
      expect(thrown(() => flowChecks.acquireSlot('k', 'h', max as never, 1)).message).toMatch(
        /^acquireSlot: max/,
      )
    }
    for (const ms of [0, -5, Number.NaN, Number.POSITIVE_INFINITY, '1']) {
      expect(thrown(() => flowChecks.takeRate('k', 1, ms as never)).message).toMatch(/^takeRate: perMs/)
      expect(thrown(() => flowChecks.acquireSlot('k', 'h', 1, ms as never)).message).toMatch(
        /^acquireSlot: leaseMs/,
      )
      expect(thrown(() => flowChecks.putValue('k', 'v', ms as never)).message).toMatch(/^putValue: ttlMs/)
    }
    expect(thrown(() => flowChecks.setPaused('q', 'yes' as never)).message).toBe(
      'setPaused: paused must be a boolean, got a string of 3 characters',
    )
    expect(thrown(() => flowChecks.putValue('k', { v: 1 } as never, 1)).message).toBe(
      'putValue: value must be a string, got an object',
    )
  })
})
