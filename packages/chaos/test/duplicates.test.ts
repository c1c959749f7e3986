import { describe, expect, it } from 'vitest'
import { type Disruptions, rerunCause } from '../src/duplicates.js'
import type { RunRecord } from '../src/run-log.js'

const run = (pid: number, at: number, attempt: number): RunRecord => ({
  id: 't',
  attempt,
  pid,
  at,
  planned: 'ok',
})
const quiet: Disruptions = { stops: [], exits: [], cuts: [] }
const termed: Disruptions = {
  stops: [{ pid: 1, at: 1_000, signal: 'SIGTERM' }],
  exits: [
    {
      pid: 1,
      code: 0,
      signal: null,
      sent: 'SIGTERM',
      startedAt: 0,
      exitedAt: 1_500,
    } as Disruptions['exits'][number],
  ],
  cuts: [],
}

describe('chaos: why a task ran again', () => {
  it('a redelivery (higher attempt) after a graceful stop with no cut is a defect', () => {
    expect(rerunCause(run(1, 500, 1), run(2, 40_000, 2), termed)).toBe('graceful-stop')
  })

  it('a second copy (attempt not higher) is a republish from upstream, whatever befell the worker before', () => {
    // Measured on PostgreSQL: a chain step ran twice because the step before it ran twice (its
    // worker SIGKILLed after publishing, before its ack); the copy ran at attempt 1 again.
    expect(rerunCause(run(1, 500, 1), run(2, 40_000, 1), termed)).toBe('republish')
    expect(rerunCause(run(1, 500, 3), run(2, 40_000, 2), quiet)).toBe('republish')
  })

  it('a kill after the run began explains a redelivery', () => {
    const killed: Disruptions = { ...quiet, stops: [{ pid: 1, at: 600, signal: 'SIGKILL' }] }
    expect(rerunCause(run(1, 500, 1), run(2, 9_000, 2), killed)).toBe('kill')
    expect(rerunCause(run(1, 500, 1), run(2, 9_000, 2), quiet)).toBe('unexplained')
  })
})
