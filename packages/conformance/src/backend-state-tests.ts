import type { TaskRecord } from '@errand/core'
import { expect } from 'vitest'
import type { BackendSuiteContext } from './harness.js'
import { sleep, uniqueName } from './helpers.js'

const TTL = { ttlMs: 60_000 }

/** A record id unique to this run. */
export function taskId(): string {
  return uniqueName('conf-task')
}

/** Records: write, read, replace, expire, CANCELED. */
export function registerStateTests({ test, h }: BackendSuiteContext): void {
  test('setState and getState round trip JSON values', async () => {
    const backend = await h.open()
    const id = taskId()
    const record: TaskRecord = {
      id,
      state: 'SUCCESS',
      task: 'conf.echo',
      result: {
        text: 'héllo 你好 🌍',
        n: 42.5,
        neg: -1,
        ok: true,
        none: null,
        list: [1, 'two', { three: 3 }],
      },
      attempts: 2,
      createdAt: 1_700_000_000_000,
      startedAt: 1_700_000_000_100,
      finishedAt: 1_700_000_000_200,
      children: ['a', 'b'],
    }
    expect(await backend.setState(record, TTL), 'setState must return the state it stored').toBe('SUCCESS')
    expect(
      await backend.getState(id),
      'getState must return the record as written (JSON values, unicode, nested lists)',
    ).toEqual(record)
    const failed: TaskRecord = {
      id: taskId(),
      state: 'FAILURE',
      error: { name: 'TypeError', message: 'bad ✗', code: 'ERR_X', stack: 'TypeError: bad\n    at x' },
    }
    await backend.setState(failed, TTL)
    expect(
      await backend.getState(failed.id),
      "a FAILURE record's error (name, message, code, stack) must round trip",
    ).toEqual(failed)
    expect(await backend.getState(taskId()), 'getState of an unknown id must be undefined').toBeUndefined()
  })

  test('setState replaces the stored record', async () => {
    const backend = await h.open()
    const id = taskId()
    await backend.setState({ id, state: 'STARTED', task: 'conf.t', attempts: 1, startedAt: 5 }, TTL)
    expect(
      await backend.setState({ id, state: 'RETRY', attempts: 2 }, TTL),
      'setState over an existing record must return the new state',
    ).toBe('RETRY')
    expect(
      await backend.getState(id),
      'setState must replace the record, not merge fields of the old one into it',
    ).toEqual({ id, state: 'RETRY', attempts: 2 })
  })

  test('getStates answers in the order asked', async () => {
    const backend = await h.open()
    const a = taskId()
    const b = taskId()
    await backend.setState({ id: a, state: 'PENDING' }, TTL)
    await backend.setState({ id: b, state: 'STARTED' }, TTL)
    const states = await backend.getStates([b, taskId(), a, b])
    expect(
      states.map((r) => r?.state),
      'getStates must answer in the order asked, undefined for an unknown id, repeats included',
    ).toEqual(['STARTED', undefined, 'PENDING', 'STARTED'])
    expect(states[0]?.id, 'getStates must answer the record of each id asked').toBe(b)
    expect(await backend.getStates([]), 'getStates of no ids must be an empty list').toEqual([])
  })

  test('records expire ttlMs after their last write', async () => {
    const backend = await h.open()
    const ttlMs = h.ms(1000)
    const id = taskId()
    const refreshed = taskId()
    await backend.setState({ id, state: 'SUCCESS' }, { ttlMs })
    await backend.setState({ id: refreshed, state: 'STARTED' }, { ttlMs })
    expect(
      (await backend.getState(id))?.state,
      'a record must be readable right after it was written with a ttl',
    ).toBe('SUCCESS')
    // t = 0.5 ttl: rewrite one record, which now expires at 1.5 ttl.
    await sleep(ttlMs * 0.5)
    await backend.setState({ id: refreshed, state: 'SUCCESS' }, { ttlMs })
    // t = 1.3 ttl: the first is gone, the rewritten one is not.
    await sleep(ttlMs * 0.8)
    expect(await backend.getState(id), 'still there after its ttl').toBeUndefined()
    expect((await backend.getState(refreshed))?.state, 'the second write did not refresh the ttl').toBe(
      'SUCCESS',
    )
    // t = 1.8 ttl: both gone.
    await sleep(ttlMs * 0.5)
    expect(
      await backend.getState(refreshed),
      'a record rewritten at 0.5 ttl must be gone at 1.8 ttl',
    ).toBeUndefined()
  })

  test('a CANCELED record is never overwritten', async () => {
    const backend = await h.open()
    const other = await h.open()
    const id = taskId()
    await backend.setState({ id, state: 'STARTED' }, TTL)
    expect(
      await backend.setState({ id, state: 'CANCELED', finishedAt: 7 }, TTL),
      'setState(CANCELED) must return CANCELED',
    ).toBe('CANCELED')
    expect(
      await backend.setState({ id, state: 'SUCCESS', result: 1 }, TTL),
      'setState after CANCELED must not overwrite it and must return CANCELED',
    ).toBe('CANCELED')
    expect(
      await other.setState({ id, state: 'FAILURE' }, TTL),
      'setState(FAILURE) from another instance must not overwrite CANCELED',
    ).toBe('CANCELED')
    expect(
      await other.setState({ id, state: 'PENDING' }, TTL),
      'setState(PENDING) from another instance must not overwrite CANCELED',
    ).toBe('CANCELED')
    expect(await backend.getState(id), 'the CANCELED record must be stored unchanged').toEqual({
      id,
      state: 'CANCELED',
      finishedAt: 7,
    })
  })
}
