// End to end: `errand events` follows a worker's events live, and `errand result` shows a task's
// progress and log lines, from the binary run in a child process against Redis and PostgreSQL.
import { randomBytes } from 'node:crypto'
import { type App, createApp, defineTask, type TaskEvent } from '@errand/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { runCli, runInProcess, startCli } from './run-cli.js'
import { postgresStore, redisStore, type TestStore } from './stores.js'

const QUEUE = `cli-ev-${randomBytes(3).toString('hex')}`

const report = defineTask({
  name: 'cli.report',
  queue: QUEUE,
  input: z.object({ n: z.number() }),
  handler: ({ n }, ctx) => {
    ctx.progress({ done: n, of: n })
    ctx.log.info(`reported ${n}`)
    if (n < 0) throw new Error('negative')
    return n
  },
})

/** Sends `report` from its handler with ctx.send: the child's record names its parent and root. */
const fanOut = defineTask({
  name: 'cli.fanout',
  queue: QUEUE,
  input: z.object({ n: z.number() }),
  handler: async ({ n }, ctx) => (await ctx.send(report.s({ n }))).id,
})

describe.each([redisStore(), postgresStore()])('errand events and result on $name', (store: TestStore) => {
  const env = { ERRAND_BROKER_URL: store.url, ERRAND_BACKEND_URL: store.url }
  let app: App

  beforeAll(async () => {
    app = createApp({ broker: store.url, backend: store.url, tasks: [report, fanOut] })
    await app.worker({ concurrency: 2 }).start()
  }, 60_000)

  afterAll(async () => {
    await app?.close()
    await store.cleanup()
  })

  it('events --json prints each event of a worker in another process, live, and Ctrl-C ends it with 0', async () => {
    const child = startCli(['events', '--queue', QUEUE, '--type', 'sent,succeeded,failed', '--json'], env)
    child.stdin?.end()
    let stdout = ''
    let stderr = ''
    const lines: TaskEvent[] = []
    let onLine = () => {}
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString()
      const parts = stdout.split('\n')
      stdout = parts.pop() ?? ''
      for (const p of parts) if (p.trim()) lines.push(JSON.parse(p) as TaskEvent)
      onLine()
    })
    const following = new Promise<void>((resolve, reject) => {
      child.stderr?.on('data', (d: Buffer) => {
        stderr += d.toString()
        if (stderr.includes('following events')) resolve()
      })
      child.on('close', () => reject(new Error(`events ended early: ${stderr}`)))
    })
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
    try {
      await following
      const ok = await app.send(report.s({ n: 2 }))
      const bad = await app.send(report.s({ n: -1 }))
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`got ${JSON.stringify(lines)}; ${stderr}`)), 20_000)
        onLine = () => {
          if (lines.filter((e) => e.type !== 'sent').length >= 2) {
            clearTimeout(timer)
            resolve()
          }
        }
        onLine()
      })
      const of = (id: string) => lines.filter((e) => e.id === id).map((e) => e.type)
      expect(of(ok.id)).toEqual(['sent', 'succeeded'])
      expect(of(bad.id)).toEqual(['sent', 'failed'])
      expect(lines.find((e) => e.type === 'failed')).toMatchObject({
        error: { message: 'negative' },
        willRetry: false,
      })
    } finally {
      child.kill('SIGINT')
    }
    expect(await exited).toBe(0)
  }, 60_000)

  it('events --recent prints a queue’s history in text, oldest first', async () => {
    // Stored before it is broadcast (Redis: the queue's stream is written first in the same
    // pipeline; Postgres: the INSERT and its NOTIFY commit together), so once seen it is history.
    const stored = await app.events({ queues: [QUEUE], types: ['succeeded'] })
    const r = await app.send(report.s({ n: 7 }))
    for await (const e of stored) if (e.type === 'succeeded' && e.id === r.id) break
    const child = startCli(['events', '--queue', QUEUE, '--recent', '50'], env)
    child.stdin?.end()
    let out = ''
    const printed = new Promise<void>((resolve) =>
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString()
        if (out.includes(`succeeded      ${QUEUE}  cli.report  ${r.id}`)) resolve()
      }),
    )
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
    await printed
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
    const mine = out.split('\n').filter((l) => l.includes(r.id))
    expect(mine.map((l) => l.split(/\s+/)[1])).toEqual(['sent', 'started', 'progress', 'succeeded'])
    expect(mine[2]).toContain('{"done":7,"of":7}')
  }, 60_000)

  it('result shows progress and log lines, as text and as JSON', async () => {
    const r = await app.send(report.s({ n: 3 }))
    await r.get({ timeoutMs: 20_000 })
    const text = await runCli(['result', r.id], env)
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/progress:\s+\{\n\s+"done": 3,\n\s+"of": 3\n\}/)
    expect(text.stdout).toMatch(/logs:\n {2}\d{4}-\d\d-\d\dT[\d:.]+Z info {2}reported 3/)
    const json = await runCli(['result', r.id, '--json'], env)
    expect(JSON.parse(json.stdout)).toMatchObject({
      progress: { done: 3, of: 3 },
      logs: [{ level: 'info', message: 'reported 3' }],
    })
  }, 60_000)

  it('result shows the lineage of a task sent from a handler: queue, root and parent', async () => {
    const parent = await app.send(fanOut.s({ n: 4 }))
    const childId = (await parent.get({ timeoutMs: 20_000 })) as string
    await app.result(childId).get({ timeoutMs: 20_000 })
    const json = await runCli(['result', childId, '--json'], env)
    expect(json.code).toBe(0)
    expect(JSON.parse(json.stdout)).toMatchObject({ queue: QUEUE, root: parent.id, parent: parent.id })
    const text = await runCli(['result', childId], env)
    expect(text.stdout).toMatch(new RegExp(`parent:\\s+${parent.id}`))
  }, 60_000)
})

describe('errand events usage', () => {
  it('refuses an unknown type and --recent without --queue (exit 2)', async () => {
    const env = { ERRAND_BROKER_URL: 'memory://', ERRAND_BACKEND_URL: 'memory://' }
    const bad = await runInProcess(['events', '--type', 'nope'], env)
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('unknown event type "nope"')
    const recent = await runInProcess(['events', '--recent', '5'], env)
    expect(recent.code).toBe(2)
    expect(recent.stderr).toContain('--recent needs --queue')
  })
})
