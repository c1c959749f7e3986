import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import {
  type App,
  createApp,
  defineTask,
  MemoryBroker,
  MemoryResultBackend,
  type SetStateOptions,
  silentLogger,
  type TaskRecord,
  type TaskState,
} from '../src/index.js'

/** A result backend whose final writes (SUCCESS) take `delayMs`, counting those in progress. */
class SlowFinalWrites extends MemoryResultBackend {
  writing = 0
  mostWriting = 0
  constructor(
    name: string,
    private readonly delayMs: number,
  ) {
    super({ name })
  }
  override async setState(record: TaskRecord, options: SetStateOptions): Promise<TaskState> {
    if (record.state !== 'SUCCESS') return super.setState(record, options)
    this.writing++
    this.mostWriting = Math.max(this.mostWriting, this.writing)
    try {
      await new Promise((r) => setTimeout(r, this.delayMs))
      return await super.setState(record, options)
    } finally {
      this.writing--
    }
  }
}

const apps: App[] = []
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()))
})

describe('worker: the next task starts while a finished one is written', () => {
  it('at concurrency 1, task 2 starts before task 1’s result is stored; writes in progress stay within concurrency', async () => {
    const name = `pipe-${Math.random().toString(36).slice(2)}`
    const backend = new SlowFinalWrites(name, 150)
    const events: string[] = []
    const t = defineTask({
      name: 'pipe.t',
      input: z.object({ n: z.number() }),
      handler: ({ n }) => {
        events.push(`start ${n}`)
        return n
      },
    })
    const app = createApp({ broker: new MemoryBroker({ name }), backend, tasks: [t], logger: silentLogger })
    apps.push(app)
    const handles = await app.sendMany([t.s({ n: 1 }), t.s({ n: 2 }), t.s({ n: 3 }), t.s({ n: 4 })])
    await app.worker({ concurrency: 1 }).start()
    const first = handles[0]
    if (!first) throw new Error('no handle')
    await first.get({ timeoutMs: 5000 })
    events.push('result 1 stored')
    expect(events.indexOf('start 2'), 'task 2 waited for task 1’s result write').toBeLessThan(
      events.indexOf('result 1 stored'),
    )
    expect(await Promise.all(handles.map((h) => h.get({ timeoutMs: 5000 })))).toEqual([1, 2, 3, 4])
    // Handlers do not outrun the writes: at most `concurrency` outcomes are being written at once.
    expect(backend.mostWriting).toBe(1)
  })

  it('a fetched task waiting behind a long one keeps its lease: each runs once', async () => {
    const name = `pipe-${Math.random().toString(36).slice(2)}`
    const runs = new Map<number, number>()
    const t = defineTask({
      name: 'pipe.long',
      input: z.object({ n: z.number() }),
      handler: async ({ n }) => {
        runs.set(n, (runs.get(n) ?? 0) + 1)
        await new Promise((r) => setTimeout(r, 1500))
        return n
      },
    })
    const app = createApp({
      broker: new MemoryBroker({ name }),
      backend: new MemoryResultBackend({ name }),
      tasks: [t],
      logger: silentLogger,
    })
    apps.push(app)
    const handles = await app.sendMany([t.s({ n: 1 }), t.s({ n: 2 })])
    // Lease of 500 ms; task 2 is fetched with task 1 (prefetch 2) and waits 1.5 s for the slot.
    await app.worker({ concurrency: 1, leaseMs: 500 }).start()
    expect(await Promise.all(handles.map((h) => h.get({ timeoutMs: 5000 })))).toEqual([1, 2])
    expect([...runs.entries()].sort()).toEqual([
      [1, 1],
      [2, 1],
    ])
  })
})
