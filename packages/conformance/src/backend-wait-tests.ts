import { expect } from 'vitest'
import { taskId } from './backend-state-tests.js'
import type { BackendSuiteContext } from './harness.js'
import { withTimeout } from './helpers.js'

const TTL = { ttlMs: 60_000 }

/** `waitFor`: push or poll, it must see every final write and honour its signal. */
export function registerWaitTests({ test, h, soon }: BackendSuiteContext): void {
  test('waitFor resolves on a final state written later, not on an earlier one', async () => {
    const backend = await h.open()
    const id = taskId()
    const signal = new AbortController().signal
    const waiting = backend.waitFor(id, { signal })
    await backend.setState({ id, state: 'PENDING' }, TTL)
    await backend.setState({ id, state: 'STARTED' }, TTL)
    await backend.setState({ id, state: 'SUCCESS', result: { ok: 1 } }, TTL)
    const record = await withTimeout(waiting, soon, 'waitFor')
    expect(
      record,
      'waitFor must resolve with the final record, not an earlier PENDING or STARTED one',
    ).toEqual({ id, state: 'SUCCESS', result: { ok: 1 } })
  })

  test('waitFor resolves on a write from another instance', async () => {
    const waiter = await h.open()
    const writer = await h.open()
    const id = taskId()
    const waiting = waiter.waitFor(id, { signal: new AbortController().signal })
    await writer.setState({ id, state: 'FAILURE', error: { name: 'Error', message: 'x' } }, TTL)
    const record = await withTimeout(waiting, soon, 'waitFor')
    expect(record.state, 'waitFor must resolve on a final state written by another instance').toBe('FAILURE')
    expect(record.error, 'the record waitFor resolves with must carry the error written').toEqual({
      name: 'Error',
      message: 'x',
    })
  })

  test('waitFor resolves at once when the state is already final', async () => {
    const backend = await h.open()
    const id = taskId()
    await backend.setState({ id, state: 'CANCELED' }, TTL)
    const record = await withTimeout(
      backend.waitFor(id, { signal: new AbortController().signal }),
      soon,
      'waitFor on a final record',
    )
    expect(record.state, 'waitFor on a record already final must resolve with it at once').toBe('CANCELED')
  })

  test('waitFor does not miss a write racing the call', async () => {
    const waiter = await h.open()
    const writer = await h.open()
    const ids = Array.from({ length: 50 }, () => taskId())
    const signal = new AbortController().signal
    // Interleave: some writes start before their waitFor, some after, all at once.
    const waits: Promise<unknown>[] = []
    const writes: Promise<unknown>[] = []
    for (const [i, id] of ids.entries()) {
      const write = () => writer.setState({ id, state: 'SUCCESS', result: i }, TTL)
      if (i % 2 === 0) {
        writes.push(write())
        waits.push(waiter.waitFor(id, { signal }))
      } else {
        waits.push(waiter.waitFor(id, { signal }))
        writes.push(write())
      }
    }
    await Promise.all(writes)
    const records = (await withTimeout(Promise.all(waits), soon, '50 racing waitFor calls')) as {
      result?: unknown
    }[]
    expect(
      records.map((r) => r.result),
      'each racing waitFor must resolve with its own final record (a write racing the call was missed)',
    ).toEqual(ids.map((_, i) => i))
  })

  test('waitFor rejects with the reason when its signal aborts', async () => {
    const backend = await h.open()
    const controller = new AbortController()
    const reason = new Error('no longer interested')
    const waiting = backend.waitFor(taskId(), { signal: controller.signal })
    controller.abort(reason)
    await expect(
      withTimeout(waiting, soon, 'waitFor to reject'),
      "waitFor must reject with the signal's reason when the signal aborts while waiting",
    ).rejects.toBe(reason)
    const aborted = AbortSignal.abort(reason)
    await expect(
      withTimeout(backend.waitFor(taskId(), { signal: aborted }), soon, 'waitFor'),
      'waitFor with an already aborted signal must reject with its reason',
    ).rejects.toBe(reason)
  })
}
