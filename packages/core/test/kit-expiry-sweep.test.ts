import { describe, expect, it } from 'vitest'
import { ExpirySweep, type SweepCounts } from '../src/kit/index.js'

/** A sweep whose runs the test settles by hand. */
function manual(intervalMs = 100, batch = 10) {
  const runs: { resolve: (n: SweepCounts) => void; reject: (err: unknown) => void }[] = []
  const errors: unknown[] = []
  const sweep = new ExpirySweep({
    intervalMs,
    batch,
    sweep: () => new Promise<SweepCounts>((resolve, reject) => runs.push({ resolve, reject })),
    onError: (err) => errors.push(err),
  })
  return { sweep, runs, errors }
}

const turn = () => new Promise((r) => setImmediate(r))

describe('ExpirySweep', () => {
  it('sweeps at the first write, then at most once per interval and one at a time', async () => {
    const { sweep, runs } = manual(100)
    sweep.afterWrite(1000)
    expect(runs).toHaveLength(1)
    sweep.afterWrite(1200) // the first still runs
    expect(runs).toHaveLength(1)
    runs[0]!.resolve({ rows: 3 })
    await turn()
    sweep.afterWrite(1050)
    expect(runs).toHaveLength(1)
    sweep.afterWrite(1100)
    expect(runs).toHaveLength(2)
  })

  it('sweeps again at once after a full batch', async () => {
    const { sweep, runs } = manual(100, 10)
    sweep.afterWrite(1000)
    runs[0]!.resolve({ results: 2, kv: 10 })
    await turn()
    sweep.afterWrite(1001)
    expect(runs).toHaveLength(2)
  })

  it('reports a failed sweep (thrown or rejected) and tries again after the interval', async () => {
    const errors: unknown[] = []
    let calls = 0
    const sweep = new ExpirySweep({
      intervalMs: 100,
      batch: 10,
      sweep: () => {
        calls++
        if (calls === 1) throw new Error('sync')
        return Promise.reject(new Error('async'))
      },
      onError: (err) => errors.push(err),
    })
    sweep.afterWrite(1000)
    await turn()
    sweep.afterWrite(1050)
    sweep.afterWrite(1100)
    await turn()
    expect(calls).toBe(2)
    expect(errors.map((e) => (e as Error).message)).toEqual(['sync', 'async'])
  })

  it('never sweeps with interval 0 or after stop', () => {
    const off = manual(0)
    off.sweep.afterWrite(1000)
    expect(off.runs).toHaveLength(0)
    const stopped = manual(100)
    stopped.sweep.stop()
    stopped.sweep.afterWrite(1000)
    expect(stopped.runs).toHaveLength(0)
  })
})
