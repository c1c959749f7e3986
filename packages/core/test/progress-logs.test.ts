import { randomBytes } from 'node:crypto'
import { afterEach, expect, it } from 'vitest'
import { z } from 'zod'
import {
  type App,
  createApp,
  defineTask,
  type Logger,
  MemoryResultBackend,
  PROGRESS_MAX_BYTES,
  type TaskEvent,
  type TaskRecord,
} from '../src/index.js'

const apps: App[] = []
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()))
})

function setup(tasks: Parameters<typeof createApp>[0]['tasks']) {
  const name = `pl-${randomBytes(4).toString('hex')}`
  const writes: TaskRecord[] = []
  const backend = new MemoryResultBackend({ name })
  const setState = backend.setState.bind(backend)
  backend.setState = (record, options) => {
    writes.push(record)
    return setState(record, options)
  }
  const logged: string[] = []
  const logger: Logger = {
    debug: () => {},
    info: (m) => logged.push(m),
    warn: () => {},
    error: () => {},
  }
  const app = createApp({ broker: `memory://${name}`, backend, tasks, logger })
  apps.push(app)
  return { app, writes, logged }
}

it('progress and log lines are kept on the record, readable from the handle, and logged as before', async () => {
  const task = defineTask({
    name: 'pl.report',
    input: z.object({}),
    handler: async (_: object, ctx) => {
      ctx.progress(0.5)
      ctx.log.info('half way', { step: 1 })
      ctx.log.info('done')
      ctx.progress({ done: 2, of: 2 })
      return 'ok'
    },
  })
  const { app, logged } = setup([task])
  await app.worker().start()
  const r = await app.send(task.s({}))
  expect(await r.get({ timeoutMs: 5000 })).toBe('ok')
  expect(await r.progress()).toEqual({ done: 2, of: 2 })
  const lines = await r.logs()
  expect(lines.map((l) => [l.level, l.message])).toEqual([
    ['info', 'half way {"step":1}'],
    ['info', 'done'],
  ])
  expect(typeof lines[0]?.at).toBe('number')
  expect(logged).toEqual(['half way', 'done'])
})

it('a tight loop of progress calls costs a few store writes, and the last value wins', async () => {
  const task = defineTask({
    name: 'pl.loop',
    input: z.object({}),
    handler: async (_: object, ctx) => {
      for (let i = 0; i < 100_000; i++) ctx.progress(i)
      return 'ok'
    },
  })
  const { app, writes } = setup([task])
  await app.worker().start()
  const r = await app.send(task.s({}))
  await r.get({ timeoutMs: 5000 })
  const mine = writes.filter((w) => w.id === r.id)
  // STARTED, at most one progress write (the first call; the rest fall in the 250 ms window), SUCCESS.
  expect(mine.length).toBeLessThanOrEqual(3)
  expect(mine[mine.length - 1]).toMatchObject({ state: 'SUCCESS', progress: 99_999 })
})

it('progress is visible while the task runs, and announced as a progress event', async () => {
  let release!: () => void
  const gate = new Promise<void>((resolve) => {
    release = resolve
  })
  const task = defineTask({
    name: 'pl.slow',
    input: z.object({}),
    handler: async (_: object, ctx) => {
      ctx.progress({ phase: 'fetching' })
      await gate
      return 'ok'
    },
  })
  const { app } = setup([task])
  const events = await app.events({ types: ['progress'] })
  await app.worker().start()
  const r = await app.send(task.s({}))
  let first: TaskEvent | undefined
  for await (const e of events) {
    if (e.type !== 'dropped') first = e
    break
  }
  expect(first).toMatchObject({ type: 'progress', id: r.id, value: { phase: 'fetching' } })
  expect(await r.state()).toBe('STARTED')
  expect(await r.progress()).toEqual({ phase: 'fetching' })
  release()
  await r.get({ timeoutMs: 5000 })
})

it('progress beyond 4 KiB or not JSON is refused with ERR_VALIDATION', async () => {
  const task = defineTask({
    name: 'pl.big',
    input: z.object({}),
    handler: async (_: object, ctx) => {
      const codes: unknown[] = []
      for (const value of ['x'.repeat(PROGRESS_MAX_BYTES), 10n, () => 1]) {
        try {
          ctx.progress(value)
        } catch (err) {
          codes.push((err as { code?: unknown }).code)
        }
      }
      ctx.progress('x'.repeat(PROGRESS_MAX_BYTES - 2))
      return codes
    },
  })
  const { app } = setup([task])
  await app.worker().start()
  const r = await app.send(task.s({}))
  expect(await r.get({ timeoutMs: 5000 })).toEqual(['ERR_VALIDATION', 'ERR_VALIDATION', 'ERR_VALIDATION'])
  expect(((await r.progress()) as string).length).toBe(PROGRESS_MAX_BYTES - 2)
})

it('logs keep the last 100 lines, each cut at 1 KiB, and go with a failure too', async () => {
  const task = defineTask({
    name: 'pl.chatty',
    input: z.object({}),
    handler: async (_: object, ctx) => {
      for (let i = 0; i < 150; i++) ctx.log.warn(`line ${i}`)
      ctx.log.error('y'.repeat(5000))
      throw new Error('nope')
    },
  })
  const { app } = setup([task])
  await app.worker().start()
  const r = await app.send(task.s({}))
  await expect(r.get({ timeoutMs: 5000 })).rejects.toMatchObject({ code: 'ERR_TASK_FAILED' })
  const lines = await r.logs()
  expect(lines).toHaveLength(100)
  expect(lines[0]?.message).toBe('line 51')
  const last = lines[lines.length - 1]
  expect(last?.level).toBe('error')
  expect(Buffer.byteLength(last?.message ?? '')).toBeLessThanOrEqual(1024)
  expect(last?.message.endsWith('…')).toBe(true)
})
