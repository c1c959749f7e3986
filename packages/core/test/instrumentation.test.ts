import { AsyncLocalStorage } from 'node:async_hooks'
import { randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import {
  type App,
  chain,
  chord,
  createApp,
  defineTask,
  type Envelope,
  type Instrumentation,
  type RunInfo,
  silentLogger,
} from '../src/index.js'

const apps: App[] = []
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()))
})

const unique = (p: string) => `${p}-${randomBytes(4).toString('hex')}`
const scope = new AsyncLocalStorage<string>()

const seenHeaders: Record<string, Record<string, string>> = {}
const seenScope: Record<string, string | undefined> = {}
const step = defineTask({
  name: 'instr.step',
  input: z.number(),
  handler: (n: number, ctx) => {
    seenHeaders[`${ctx.id}`] = { ...ctx.headers }
    seenScope[ctx.id] = scope.getStore()
    return n + 1
  },
})
const sum = defineTask({
  name: 'instr.sum',
  input: z.array(z.number()),
  handler: (ns: number[]) => ns.reduce((a, b) => a + b, 0),
})
let flaky = 0
const flakyTask = defineTask({
  name: 'instr.flaky',
  input: z.number(),
  retry: { attempts: 2 },
  handler: (n: number) => {
    if (flaky++ === 0) throw new Error('first attempt fails')
    return n
  },
})

function recorder() {
  const published: Envelope[] = []
  const runs: RunInfo[] = []
  const instrumentation: Instrumentation = {
    onPublish(envelopes) {
      for (const e of envelopes) {
        published.push({ ...e })
        e.headers = { ...e.headers, 'x-hop': String(published.length) }
      }
    },
    wrapRun(info, run) {
      runs.push(info)
      return scope.run(`span-of-${info.id}`, run)
    },
  }
  return { published, runs, instrumentation }
}

async function appWith(instrumentation: Instrumentation[], queue: string): Promise<App> {
  const app = createApp({
    broker: 'memory://',
    backend: 'memory://',
    tasks: [step, sum, flakyTask],
    defaultQueue: queue,
    logger: silentLogger,
    instrumentation,
  })
  apps.push(app)
  await app.worker({ concurrency: 4 }).start()
  return app
}

describe('instrumentation hooks', () => {
  it('onPublish sees every publish of a chain and its headers reach the handlers; wrapRun wraps each step', async () => {
    const r = recorder()
    const app = await appWith([r.instrumentation], unique('instr'))
    const sent = await app.send(chain(step.s(1), step.s(), step.s()), { headers: { tenant: 'a' } })
    expect(await sent.get({ timeoutMs: 5000 })).toBe(4)
    expect(r.published.map((e) => e.task)).toEqual(['instr.step', 'instr.step', 'instr.step'])
    const [first, second, third] = r.published as [Envelope, Envelope, Envelope]
    expect(second.parent).toBe(first.id)
    expect(third.parent).toBe(second.id)
    // Each step's handler sees the header onPublish wrote for it, next to the workflow's own.
    expect(seenHeaders[first.id]).toEqual({ tenant: 'a', 'x-hop': '1' })
    expect(seenHeaders[third.id]).toEqual({ tenant: 'a', 'x-hop': '3' })
    // The handler ran inside the wrapper's context.
    expect(seenScope[second.id]).toBe(`span-of-${second.id}`)
    expect(r.runs.map((i) => [i.id, i.attempt, i.maxAttempts, i.root, i.parent])).toEqual([
      [first.id, 1, 1, first.id, undefined],
      [second.id, 1, 1, first.id, first.id],
      [third.id, 1, 1, first.id, second.id],
    ])
    expect(r.runs[1]?.headers).toEqual({ tenant: 'a', 'x-hop': '2' })
    expect(r.runs[0]?.dueAt).toBe(first.createdAt)
  })

  it('a chord member knows its group, a retry is wrapped again with attempt 2, several instrumentations nest', async () => {
    const outer = recorder()
    const inner = recorder()
    const app = await appWith([outer.instrumentation, inner.instrumentation], unique('instr'))
    const c = await app.send(chord([step.s(1), step.s(2), step.s(3)], sum.s()))
    expect(await c.get({ timeoutMs: 5000 })).toBe(9)
    const members = outer.runs.filter((i) => i.task === 'instr.step')
    expect(members.map((i) => [i.group?.index, i.group?.size]).sort()).toEqual([
      [0, 3],
      [1, 3],
      [2, 3],
    ])
    expect(new Set(members.map((i) => i.group?.id)).size).toBe(1)
    expect(outer.runs.find((i) => i.task === 'instr.sum')?.group).toBeUndefined()
    // The inner wrapper runs inside the outer one: the handler sees the inner's scope.
    expect(inner.runs).toHaveLength(outer.runs.length)
    flaky = 0
    const f = await app.send(flakyTask.s(7))
    expect(await f.get({ timeoutMs: 5000 })).toBe(7)
    const attempts = outer.runs.filter((i) => i.task === 'instr.flaky')
    expect(attempts.map((i) => [i.attempt, i.maxAttempts])).toEqual([
      [1, 2],
      [2, 2],
    ])
    expect(attempts[1]?.dueAt).toBeGreaterThanOrEqual(attempts[1]?.createdAt ?? Number.POSITIVE_INFINITY)
    // The retry was published through onPublish too, with attempt 2.
    expect(outer.published.filter((e) => e.task === 'instr.flaky').map((e) => e.attempt)).toEqual([1, 2])
  })

  it('an instrumentation that says it is not active is not asked to wrap attempts; active again, it is', async () => {
    const r = recorder()
    let on = false
    const app = await appWith([{ ...r.instrumentation, active: () => on }], unique('instr'))
    expect(await (await app.send(step.s(1))).get({ timeoutMs: 5000 })).toBe(2)
    expect(r.runs, 'no wrapRun while active() is false').toEqual([])
    expect(r.published, 'onPublish is still called').toHaveLength(1)
    on = true
    const second = await app.send(step.s(5))
    expect(await second.get({ timeoutMs: 5000 })).toBe(6)
    expect(r.runs.map((i) => i.id)).toEqual([second.id])
  })

  it('a throwing onPublish does not fail the send; a non-instrumentation is refused', async () => {
    const app = await appWith(
      [
        {
          onPublish() {
            throw new Error('tracing bug')
          },
        },
      ],
      unique('instr'),
    )
    expect(await (await app.send(step.s(1))).get({ timeoutMs: 5000 })).toBe(2)
    expect(() =>
      createApp({ broker: 'memory://', instrumentation: [{ wrapRun: 1 } as unknown as Instrumentation] }),
    ).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }))
  })
})
