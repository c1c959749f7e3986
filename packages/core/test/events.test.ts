import { randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import {
  type App,
  chain,
  createApp,
  defineTask,
  EventStream,
  type EventStreamItem,
  MemoryBroker,
  MemoryResultBackend,
  MemoryStore,
  type ResultBackend,
  resultBackendCapabilities,
  silentLogger,
  type TaskEvent,
} from '../src/index.js'

const apps: App[] = []
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()))
})

const unique = (p: string) => `${p}-${randomBytes(4).toString('hex')}`

const double = defineTask({
  name: 'ev.double',
  input: z.number(),
  handler: async (n: number, ctx) => {
    ctx.progress({ half: true })
    ctx.log.info('doubling', { n })
    return n * 2
  },
})
const boom = defineTask({
  name: 'ev.boom',
  input: z.number(),
  retry: { attempts: 2, backoff: { type: 'fixed', delayMs: 5 } },
  handler: async () => {
    throw Object.assign(new Error('boom'), { code: 'E_BOOM' })
  },
})

function makeApp(store: string, options: { events?: boolean; backend?: ResultBackend | false } = {}): App {
  const app = createApp({
    broker: `memory://${store}`,
    ...(options.backend !== false && { backend: options.backend ?? `memory://${store}` }),
    tasks: [double, boom],
    logger: silentLogger,
    ...(options.events !== undefined && { events: options.events }),
  })
  apps.push(app)
  return app
}

/** Read `stream` until `done` says so (or fail after 5 s). */
async function collect(
  stream: AsyncIterable<EventStreamItem>,
  done: (items: EventStreamItem[]) => boolean,
): Promise<EventStreamItem[]> {
  const items: EventStreamItem[] = []
  const timer = setTimeout(() => {
    throw new Error(`events timed out: ${JSON.stringify(items.map((i) => i.type))}`)
  }, 5000)
  try {
    for await (const item of stream) {
      items.push(item)
      if (done(items)) break
    }
  } finally {
    clearTimeout(timer)
  }
  return items
}

describe('app.events()', () => {
  it('a subscriber app sees the sends of a producer app and the lifecycle from a worker app, in order', async () => {
    const store = unique('ev')
    const watcher = makeApp(store)
    const producer = makeApp(store)
    const workerApp = makeApp(store)
    const events = await watcher.events({ queues: ['default'] })
    const r = await producer.send(double.s(21))
    await workerApp.worker().start()
    expect(await r.get({ timeoutMs: 5000 })).toBe(42)
    const items = await collect(events, (xs) => xs.some((x) => x.type === 'succeeded'))
    const mine = items.filter((e): e is TaskEvent => e.type !== 'dropped' && e.id === r.id)
    expect(mine.map((e) => e.type)).toEqual(['sent', 'started', 'progress', 'succeeded'])
    for (const e of mine) {
      expect(e).toMatchObject({ id: r.id, task: 'ev.double', queue: 'default', attempt: 1, root: r.id })
      expect(typeof e.at).toBe('number')
    }
    expect(mine[2]).toMatchObject({ type: 'progress', value: { half: true } })
    expect((mine[3] as { durationMs: number }).durationMs).toBeGreaterThanOrEqual(0)
    expect(events.closed).toBe(true)
  })

  it('failures: a retried attempt (willRetry), then the final one and the dead letter, no stack', async () => {
    const store = unique('ev')
    const app = makeApp(store)
    const events = await app.events({ types: ['failed', 'dead-lettered'] })
    await app.worker().start()
    const r = await app.send(boom.s(1))
    await expect(r.get({ timeoutMs: 5000 })).rejects.toMatchObject({ code: 'ERR_TASK_FAILED' })
    const items = (await collect(events, (xs) => xs.length >= 3)) as TaskEvent[]
    expect(items.map((e) => [e.type, e.attempt, (e as { willRetry?: boolean }).willRetry])).toEqual([
      ['failed', 1, true],
      ['failed', 2, false],
      ['dead-lettered', 2, undefined],
    ])
    expect(items[0]).toMatchObject({
      error: { name: 'Error', message: 'boom', code: 'E_BOOM' },
      retryDelayMs: 5,
    })
    expect(items[2]).toMatchObject({ reason: 'exhausted' })
    expect(JSON.stringify(items)).not.toContain('stack')
  })

  it('a chain step carries its lineage: root is the first task, parent the previous step', async () => {
    const store = unique('ev')
    const app = makeApp(store)
    const events = await app.events({ types: ['started'] })
    await app.worker().start()
    const r = await app.send(chain(double.s(1), double.s()))
    expect(await r.get({ timeoutMs: 5000 })).toBe(4)
    const [first, second] = (await collect(events, (xs) => xs.length >= 2)) as TaskEvent[]
    expect(second?.root).toBe(first?.id)
    expect(second?.parent).toBe(first?.id)
    expect(second?.id).toBe(r.id)
  })

  it('canceled: a queued task canceled before it runs gives canceled and dead-lettered', async () => {
    const store = unique('ev')
    const app = makeApp(store)
    const events = await app.events({ types: ['canceled', 'dead-lettered', 'started'] })
    const r = await app.send(double.s(1))
    await app.cancel(r.id)
    await app.worker().start()
    const items = (await collect(events, (xs) => xs.length >= 2)) as TaskEvent[]
    expect(items.map((e) => e.type)).toEqual(['canceled', 'dead-lettered'])
    expect(items[1]).toMatchObject({ reason: 'canceled', error: { code: 'ERR_CANCELED' } })
  })

  it('events: false writes no events from that app; another app still can', async () => {
    const store = unique('ev')
    const watcher = makeApp(store)
    const quiet = makeApp(store, { events: false })
    const events = await watcher.events()
    await quiet.send(double.s(1))
    const loud = await watcher.send(double.s(2))
    const [first] = (await collect(events, (xs) => xs.length >= 1)) as TaskEvent[]
    expect(first?.id).toBe(loud.id)
  })

  it('without a backend: events of this app only, in process', async () => {
    const store = unique('ev')
    const app = makeApp(store, { backend: false })
    const other = makeApp(store, { backend: false })
    const events = await app.events()
    await other.send(double.s(9))
    const mine = await app.send(double.s(1))
    const [first] = (await collect(events, (xs) => xs.length >= 1)) as TaskEvent[]
    expect(first).toMatchObject({ type: 'sent', id: mine.id })
  })

  it('a backend without the events capability is refused with ERR_NOT_SUPPORTED, saying what works', async () => {
    const inner = new MemoryResultBackend({ store: new MemoryStore() })
    const plain: ResultBackend = {
      name: 'plain',
      capabilities: resultBackendCapabilities({ pushWait: true }),
      connect: () => inner.connect(),
      close: () => inner.close(),
      setState: (r, o) => inner.setState(r, o),
      getState: (id) => inner.getState(id),
      getStates: (ids) => inner.getStates(ids),
      waitFor: (id, o) => inner.waitFor(id, o),
      completeGroupMember: (g, i, s, o, t) => inner.completeGroupMember(g, i, s, o, t),
      setIfAbsent: (k, v, t) => inner.setIfAbsent(k, v, t),
      getValue: (k) => inner.getValue(k),
    }
    const app = makeApp(unique('ev'), { backend: plain })
    const err = await app.events().catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_NOT_SUPPORTED' })
    expect(String((err as Error).message)).toMatch(
      /"plain" has none.*memory:\/\/, redis:\/\/, postgres:\/\/ and sqlite:\/\/.*hooks/,
    )
    // Sending and running still work: events are simply not written.
    await app.worker().start()
    expect(await (await app.send(double.s(4))).get({ timeoutMs: 5000 })).toBe(8)
  })

  it('recentEvents: the last events of a queue, oldest first', async () => {
    const store = unique('ev')
    const app = makeApp(store)
    const queue = unique('q')
    const events = await app.events({ queues: [queue] })
    for (let i = 0; i < 5; i++) await app.send(double.s(i), { queue })
    await collect(events, (xs) => xs.length >= 5)
    const recent = await app.recentEvents(queue, { limit: 2 })
    expect(recent.map((e) => e.type)).toEqual(['sent', 'sent'])
    await expect(app.recentEvents(queue, { limit: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' })
  })

  it('options are checked: unknown types and bad buffer sizes are refused', async () => {
    const app = makeApp(unique('ev'))
    await expect(app.events({ types: ['nope' as 'sent'] })).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTION',
    })
    await expect(app.events({ bufferSize: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' })
  })

  it('the signal ends the iteration; app.close() ends open subscriptions', async () => {
    const app = makeApp(unique('ev'))
    const ctrl = new AbortController()
    const a = await app.events({ signal: ctrl.signal })
    const b = await app.events()
    const reading = collect(a, () => false)
    ctrl.abort()
    expect(await reading).toEqual([])
    await app.close()
    expect(b.closed).toBe(true)
  })
})

describe('EventStream: a slow reader', () => {
  const ev = (n: number): TaskEvent => ({
    type: 'progress',
    id: 't',
    task: 'x',
    queue: 'q',
    attempt: 1,
    at: n,
    value: n,
  })

  it('holds at most bufferSize items: the oldest are dropped and a marker counts them', async () => {
    const stream = new EventStream(10)
    for (let n = 0; n < 10_000; n++) stream.push(ev(n))
    await stream.close()
    const items: EventStreamItem[] = []
    for await (const item of stream) items.push(item)
    expect(items.length).toBeLessThanOrEqual(10)
    expect(items[0]).toMatchObject({ type: 'dropped' })
    const dropped = (items[0] as { count: number }).count
    const kept = items.slice(1).map((i) => (i as { value: number }).value)
    expect(dropped + kept.length).toBe(10_000)
    expect(kept[kept.length - 1]).toBe(9999)
    expect(kept).toEqual([...kept].sort((x, y) => x - y))
    expect(stream.dropped).toBe(dropped)
  })

  it('on(listener) sees every event even when the iterator is behind', async () => {
    const stream = new EventStream(2)
    const seen: number[] = []
    stream.on((e) => seen.push(e.at))
    for (let n = 0; n < 100; n++) stream.push(ev(n))
    expect(seen).toHaveLength(100)
    await stream.close()
  })
})

describe('memory backend on one store: a second app is a second "process"', () => {
  it('sees events published through another backend instance', async () => {
    const name = unique('ev')
    const a = new MemoryBroker({ name })
    const app = createApp({
      broker: a,
      backend: new MemoryResultBackend({ name }),
      tasks: [double],
      logger: silentLogger,
    })
    apps.push(app)
    const events = await app.events()
    const other = makeApp(name)
    const r = await other.send(double.s(1))
    const [first] = (await collect(events, (xs) => xs.length >= 1)) as TaskEvent[]
    expect(first?.id).toBe(r.id)
  })
})
