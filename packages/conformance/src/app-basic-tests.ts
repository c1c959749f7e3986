import { defineTask, encodeEnvelope, type TaskInfo } from '@errand/core'
import { expect } from 'vitest'
import { z } from 'zod'
import type { AppSuiteContext } from './app-harness.js'
import { deferred, expectCode, withTimeout } from './helpers.js'

/** Sending, running, results, validation, options, hooks. */
export function registerAppBasicTests({ test, h, soon }: AppSuiteContext): void {
  test('send runs the handler with validated input and stores the result', async () => {
    const queue = h.queue()
    const greet = defineTask({
      name: 'conf.greet',
      queue,
      input: z.object({ name: z.string(), times: z.number().int().default(2) }),
      output: z.object({ text: z.string() }),
      handler: ({ name, times }, ctx) => ({
        text: `${'hi '.repeat(times)}${name} #${ctx.attempt} ${ctx.id.length > 0}`,
      }),
    })
    const app = await h.app({ tasks: [greet] })
    const result = await app.send(greet.s({ name: 'ada' }))
    expect(await result.state(), 'a task sent while no worker runs must read PENDING').toBe('PENDING')
    await app.worker({ concurrency: 2 }).start()
    expect(
      await result.get({ timeoutMs: soon }),
      "the handler's output must come back through result.get() (input defaults applied, attempt 1)",
    ).toEqual({ text: 'hi hi ada #1 true' })
    const info = await result.info()
    expect(info?.state, 'the stored record of a task that succeeded must be SUCCESS').toBe('SUCCESS')
    expect(info?.attempts, 'a task that succeeded at once must record 1 attempt').toBe(1)
    expect(
      info?.finishedAt,
      "the record's finishedAt must not be before its startedAt",
    ).toBeGreaterThanOrEqual(info?.startedAt ?? Number.POSITIVE_INFINITY)
  })

  test('invalid input is refused at send with ERR_VALIDATION naming the field, and nothing is queued', async () => {
    const queue = h.queue()
    const resize = defineTask({
      name: 'conf.resize',
      queue,
      input: z.object({ url: z.string().url(), sizes: z.array(z.object({ width: z.number().int() })) }),
      handler: () => 'ok',
    })
    const app = await h.app({ tasks: [resize] })
    let error: unknown
    try {
      await app.send(resize.s({ url: 'https://example.com/a.png', sizes: [{ width: 1 }, { width: 2.5 }] }))
    } catch (err) {
      error = err
    }
    expect(
      (error as { code?: string }).code,
      "send with input failing the task's schema must reject with ERR_VALIDATION",
    ).toBe('ERR_VALIDATION')
    expect(String((error as Error).message), "the validation error must name the bad field's path").toContain(
      'input.sizes[1].width',
    )
    expect(
      (await app.stats(queue)).ready,
      'a send refused for invalid input must queue nothing (ready should stay 0)',
    ).toBe(0)
  })

  test('sendMany publishes every signature and each gets its result', async () => {
    const queue = h.queue()
    const square = defineTask({ name: 'conf.square', queue, input: z.number(), handler: (n) => n * n })
    const app = await h.app({ tasks: [square] })
    await app.worker({ concurrency: 8 }).start()
    const results = await app.sendMany(Array.from({ length: 250 }, (_, i) => square.s(i)))
    const values = await Promise.all(results.map((r) => r.get({ timeoutMs: soon })))
    expect(values, 'each of 250 tasks sent with sendMany must produce its own result, in order').toEqual(
      Array.from({ length: 250 }, (_, i) => i * i),
    )
  })

  test('a result is read from another app by id', async () => {
    const queue = h.queue()
    const echo = defineTask({ name: 'conf.echo', queue, input: z.string(), handler: (s) => s })
    const producer = await h.app({ tasks: [echo] })
    const consumer = await h.app({ tasks: [echo] })
    await consumer.worker().start()
    const sent = await producer.send(echo.s('über ✓'))
    expect(
      await consumer.result<string>(sent.id).get({ timeoutMs: soon }),
      'a result must be readable by id from another app on the same broker and backend',
    ).toBe('über ✓')
  })

  test('lifecycle hooks are called: onStart, onSuccess, onRetry, onFailure, onDeadLetter', async () => {
    const queue = h.queue()
    const events: string[] = []
    const done = deferred()
    const ok = defineTask({ name: 'conf.hook.ok', queue, input: z.null(), handler: () => 1 })
    const bad = defineTask({
      name: 'conf.hook.bad',
      queue,
      input: z.null(),
      retry: { attempts: 2, backoff: { type: 'fixed', delayMs: 10 } },
      handler: () => {
        throw new Error('nope')
      },
    })
    const app = await h.app({ tasks: [ok, bad] })
    const tag =
      (name: string) =>
      (info: Partial<TaskInfo>): void => {
        events.push(`${name}:${info.task}`)
      }
    await app
      .worker({
        hooks: {
          onStart: tag('start'),
          onSuccess: tag('success'),
          onRetry: tag('retry'),
          onFailure: tag('failure'),
          onDeadLetter: (info, reason) => {
            events.push(`dead:${info.task}:${reason}`)
            done.resolve()
          },
        },
      })
      .start()
    await (await app.send(ok.s(null))).get({ timeoutMs: soon })
    await app.send(bad.s(null))
    await withTimeout(done.promise, soon, 'the dead-letter hook')
    // Hooks of different deliveries are not ordered: the retried attempt may run, fail and reach
    // onFailure before the first attempt's ack returns and its onRetry is called.
    await withTimeout(
      (async () => {
        while (!events.includes('failure:conf.hook.bad') || !events.includes('retry:conf.hook.bad'))
          await new Promise((r) => setTimeout(r, 10))
      })(),
      soon,
      'the failure and retry hooks',
    )
    expect(
      events,
      'the worker hooks must fire: onStart and onSuccess for the good task; onRetry, onDeadLetter (exhausted) and onFailure for the failing one',
    ).toEqual(
      expect.arrayContaining([
        'start:conf.hook.ok',
        'success:conf.hook.ok',
        'retry:conf.hook.bad',
        'dead:conf.hook.bad:exhausted',
        'failure:conf.hook.bad',
      ]),
    )
  })

  test('a wrong option is refused with ERR_INVALID_OPTION naming the option', async () => {
    const queue = h.queue()
    const t = defineTask({ name: 'conf.opt', queue, input: z.null(), handler: () => null })
    const app = await h.app({ tasks: [t] })
    let error: unknown
    try {
      app.worker({ concurrency: 0 })
    } catch (err) {
      error = err
    }
    expect(
      (error as { code?: string }).code,
      'a worker option out of range must be refused with ERR_INVALID_OPTION',
    ).toBe('ERR_INVALID_OPTION')
    expect(
      String((error as Error).message),
      'the ERR_INVALID_OPTION error must name the option (concurrency)',
    ).toContain('concurrency')
    await expectCode(
      async () => app.worker({ concurency: 3 } as never),
      'ERR_INVALID_OPTION',
      'a misspelt option',
    )
  })

  test('headers travel with the task', async () => {
    const queue = h.queue()
    const seen = deferred<Readonly<Record<string, string>>>()
    const t = defineTask({
      name: 'conf.headers',
      queue,
      input: z.null(),
      handler: (_i, ctx) => {
        seen.resolve(ctx.headers)
        return null
      },
    })
    const app = await h.app({ tasks: [t] })
    await app.worker().start()
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    await app.send(t.s(null), { headers: { traceparent } })
    expect(
      (await withTimeout(seen.promise, soon, 'the handler')).traceparent,
      'a header given at send must reach the handler unchanged (ctx.headers)',
    ).toBe(traceparent)
  })

  test('the encoded envelope is plain versioned JSON', async () => {
    const bytes = encodeEnvelope({
      v: 1,
      id: 'x',
      task: 't',
      input: { a: 1 },
      queue: 'q',
      attempt: 1,
      createdAt: 1,
    })
    expect(
      JSON.parse(new TextDecoder().decode(bytes)),
      'encodeEnvelope must produce plain JSON carrying v, id, task and input',
    ).toMatchObject({
      v: 1,
      id: 'x',
      task: 't',
      input: { a: 1 },
    })
  })
}
