import {
  type DeadLetterReason,
  defineTask,
  ENVELOPE_VERSION,
  encodeEnvelope,
  RejectTaskError,
  RetryTaskError,
} from '@errand/core'
import { expect } from 'vitest'
import { z } from 'zod'
import type { AppSuiteContext } from './app-harness.js'
import { deferred, encode, expectCode, withTimeout } from './helpers.js'

/** Retries, backoff, rejection, exhaustion, timeouts, dead letters of every reason. */
export function registerAppFailureTests({ test, h, soon }: AppSuiteContext): void {
  for (const type of ['fixed', 'exponential', 'fibonacci'] as const) {
    test(`retries with ${type} backoff until an attempt succeeds`, async () => {
      const queue = h.queue()
      const times: number[] = []
      const attempts: number[] = []
      const base = h.ms(40)
      const flaky = defineTask({
        name: `conf.flaky.${type}`,
        queue,
        input: z.null(),
        retry: { attempts: 4, backoff: { type, delayMs: base } },
        handler: (_i, ctx) => {
          times.push(Date.now())
          attempts.push(ctx.attempt)
          if (ctx.attempt < 4) throw new Error(`fail ${ctx.attempt}`)
          return 'done'
        },
      })
      const app = await h.app({ tasks: [flaky] })
      await app.worker().start()
      const r = await app.send(flaky.s(null))
      expect(
        await r.get({ timeoutMs: soon }),
        "a task that fails 3 times and then succeeds must return the 4th attempt's output",
      ).toBe('done')
      expect(attempts, 'ctx.attempt must count 1, 2, 3, 4 across the retries').toEqual([1, 2, 3, 4])
      const expected = { fixed: [1, 1, 1], exponential: [1, 2, 4], fibonacci: [1, 1, 2] }[type]
      for (let i = 1; i < times.length; i++) {
        const gap = (times[i] as number) - (times[i - 1] as number)
        expect(gap, `gap before attempt ${i + 1}`).toBeGreaterThanOrEqual(
          (expected[i - 1] as number) * base - 5,
        )
      }
      expect(
        (await r.info())?.attempts,
        'the record of a task that succeeded on its 4th attempt must say attempts 4',
      ).toBe(4)
    })
  }

  test('RetryTaskError retries after its delay and counts an attempt', async () => {
    const queue = h.queue()
    const times: number[] = []
    const delayMs = h.ms(200)
    const t = defineTask({
      name: 'conf.retry-error',
      queue,
      input: z.null(),
      retry: { attempts: 2 },
      handler: (_i, ctx) => {
        times.push(Date.now())
        if (ctx.attempt === 1) throw new RetryTaskError({ delayMs })
        return ctx.attempt
      },
    })
    const app = await h.app({ tasks: [t] })
    await app.worker().start()
    const r = await app.send(t.s(null))
    expect(
      await r.get({ timeoutMs: soon }),
      'a task that threw RetryTaskError once must succeed on attempt 2',
    ).toBe(2)
    expect(
      (times[1] as number) - (times[0] as number),
      'RetryTaskError({ delayMs }) must delay the next attempt by at least delayMs',
    ).toBeGreaterThanOrEqual(delayMs - 5)
  })

  test('RejectTaskError fails at once, without retrying, and dead-letters as rejected', async () => {
    const queue = h.queue()
    let runs = 0
    const t = defineTask({
      name: 'conf.reject',
      queue,
      input: z.null(),
      retry: { attempts: 5, backoff: { type: 'fixed', delayMs: 1 } },
      handler: () => {
        runs++
        throw new RejectTaskError('bad request, do not retry')
      },
    })
    const app = await h.app({ tasks: [t] })
    const dead = deferred<DeadLetterReason>()
    await app.worker({ hooks: { onDeadLetter: (_i, reason) => dead.resolve(reason) } }).start()
    const r = await app.send(t.s(null))
    await expectCode(() => r.get({ timeoutMs: soon }), 'ERR_TASK_FAILED', 'get() of a rejected task')
    expect(
      await withTimeout(dead.promise, soon, 'the dead letter'),
      'a task that threw RejectTaskError must be dead-lettered with reason rejected',
    ).toBe('rejected')
    expect(runs, 'RejectTaskError must not be retried: the handler ran more than once').toBe(1)
    const letters = await app.deadLetters(queue).list()
    expect(letters, 'a rejected task must leave exactly one dead letter').toHaveLength(1)
    expect(letters[0]?.reason, 'the dead letter of a rejected task must have reason rejected').toBe(
      'rejected',
    )
    expect(letters[0]?.error?.message, "the dead letter must keep the RejectTaskError's message").toContain(
      'bad request',
    )
  })

  test('a task that exhausts its attempts is FAILURE and dead-lettered with its error and original bytes', async () => {
    const queue = h.queue()
    const t = defineTask({
      name: 'conf.exhaust',
      queue,
      input: z.object({ n: z.number() }),
      retry: { attempts: 2, backoff: { type: 'fixed', delayMs: 1 } },
      handler: ({ n }) => {
        throw new Error(`boom ${n}`)
      },
    })
    const app = await h.app({ tasks: [t] })
    const dead = deferred()
    await app.worker({ hooks: { onDeadLetter: () => dead.resolve() } }).start()
    const r = await app.send(t.s({ n: 7 }))
    let error: unknown
    try {
      await r.get({ timeoutMs: soon })
    } catch (err) {
      error = err
    }
    expect(
      (error as { code?: string }).code,
      'get() of a task that exhausted its attempts must reject with ERR_TASK_FAILED',
    ).toBe('ERR_TASK_FAILED')
    expect(
      String((error as Error).message),
      "the ERR_TASK_FAILED error must carry the handler's error message",
    ).toContain('boom 7')
    expect(await r.state(), 'a task that exhausted its attempts must be stored as FAILURE').toBe('FAILURE')
    await withTimeout(dead.promise, soon, 'the dead letter')
    const [letter] = await app.deadLetters(queue).list()
    expect(
      letter?.reason,
      'a task that exhausted its attempts must be dead-lettered with reason exhausted',
    ).toBe('exhausted')
    const body = JSON.parse(new TextDecoder().decode(letter?.body))
    expect(
      body,
      'the dead letter must keep the original message bytes (the envelope of the last attempt: id, task, input, attempt 2)',
    ).toMatchObject({ id: r.id, task: 'conf.exhaust', input: { n: 7 }, attempt: 2 })
  })

  test('a timeout aborts ctx.signal and fails the attempt', async () => {
    const queue = h.queue()
    const aborted = deferred<unknown>()
    const t = defineTask({
      name: 'conf.timeout',
      queue,
      input: z.null(),
      timeoutMs: h.ms(100),
      retry: { attempts: 2, backoff: { type: 'fixed', delayMs: 1 } },
      handler: (_i, ctx) =>
        new Promise((resolve) => {
          if (ctx.attempt === 2) return resolve('second attempt is quick')
          ctx.signal.addEventListener('abort', () => aborted.resolve(ctx.signal.reason))
        }),
    })
    const app = await h.app({ tasks: [t] })
    await app.worker().start()
    const r = await app.send(t.s(null))
    expect(await r.get({ timeoutMs: soon }), 'after a timed-out first attempt, the retry must succeed').toBe(
      'second attempt is quick',
    )
    expect(
      ((await aborted.promise) as { code?: string }).code,
      'a task past its timeoutMs must see ctx.signal abort with an ERR_TIMEOUT reason',
    ).toBe('ERR_TIMEOUT')
  })

  test('dead letters: undecodable bytes, unregistered task and invalid input, and the worker goes on', async () => {
    const queue = h.queue()
    const ok = defineTask({
      name: 'conf.dl.ok',
      queue,
      input: z.object({ n: z.number() }),
      handler: ({ n }) => n,
    })
    const app = await h.app({ tasks: [ok] })
    const reasons: DeadLetterReason[] = []
    const three = deferred()
    await app
      .worker({
        hooks: {
          onDeadLetter: (_i, reason) => {
            reasons.push(reason)
            if (reasons.length === 3) three.resolve()
          },
        },
      })
      .start()
    const raw = await h.broker()
    const envelope = (task: string, input: unknown) =>
      encodeEnvelope({
        v: ENVELOPE_VERSION,
        id: `id-${task}`,
        task,
        input,
        queue,
        attempt: 1,
        createdAt: Date.now(),
      })
    await raw.publish(queue, [
      { body: encode('{"v":1,"id":"x","__proto__":{"polluted":true}}') },
      { body: envelope('conf.nobody', {}) },
      { body: envelope('conf.dl.ok', { n: 'not a number' }) },
    ])
    await withTimeout(three.promise, soon, 'three dead letters')
    expect(
      reasons.sort(),
      'garbage bytes, an unknown task and invalid input must each be dead-lettered once, with reasons undecodable, unregistered and invalid-input',
    ).toEqual(['invalid-input', 'undecodable', 'unregistered'])
    expect(
      ({} as Record<string, unknown>).polluted,
      'decoding a message with a __proto__ key must not pollute Object.prototype',
    ).toBeUndefined()
    const letters = await app.deadLetters(queue).list()
    expect(
      letters.map((l) => l.reason).sort(),
      "the broker's dead letters must hold the three messages with their reasons",
    ).toEqual(['invalid-input', 'undecodable', 'unregistered'])
    const undecodable = letters.find((l) => l.reason === 'undecodable')
    expect(
      new TextDecoder().decode(undecodable?.body),
      'the undecodable dead letter must keep its original bytes',
    ).toContain('__proto__')
    expect(
      await (await app.send(ok.s({ n: 5 }))).get({ timeoutMs: soon }),
      'the worker must go on running tasks after dead-lettering bad messages',
    ).toBe(5)
  })

  test('a requeued dead letter runs again', async () => {
    const queue = h.queue()
    let fail = true
    const t = defineTask({
      name: 'conf.requeue',
      queue,
      input: z.null(),
      handler: () => {
        if (fail) throw new Error('not yet')
        return 'second time lucky'
      },
    })
    const app = await h.app({ tasks: [t] })
    const dead = deferred()
    await app.worker({ hooks: { onDeadLetter: () => dead.resolve() } }).start()
    const r = await app.send(t.s(null))
    await withTimeout(dead.promise, soon, 'the dead letter')
    fail = false
    expect(
      await app.deadLetters(queue).requeue(),
      'requeue() of the dead letters must return how many it moved (1)',
    ).toBe(1)
    await withTimeout(
      (async () => {
        while ((await r.state()) !== 'SUCCESS') await new Promise((res) => setTimeout(res, 20))
      })(),
      soon,
      'the requeued task to succeed',
    )
    expect(await r.get(), 'the requeued task must run again and store its new result').toBe(
      'second time lucky',
    )
    expect(
      await app.deadLetters(queue).list(),
      'the requeued dead letter must be gone from the dead letters',
    ).toHaveLength(0)
  })
}
