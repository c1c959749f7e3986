import { type App, createApp, defineTask, type QueueStats, silentLogger } from '@errand/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { errandOtel, type PrometheusEndpoint, startPrometheusExporter } from '../src/index.js'
import { unique } from './helpers.js'

const ok = defineTask({ name: 'prom.ok', input: z.number(), handler: (n: number) => n * 2 })
const bad = defineTask({
  name: 'prom.bad',
  input: z.number(),
  retry: { attempts: 2, backoff: { type: 'fixed', delayMs: 1 } },
  handler: () => {
    throw new Error('no')
  },
})
const parked = defineTask({
  name: 'prom.parked',
  input: z.number(),
  queue: unique('parked'),
  handler: (n: number) => n,
})

async function scrape(url: string): Promise<string> {
  const res = await fetch(url)
  expect(res.status).toBe(200)
  return res.text()
}

/** The value of the sample whose name and labels match exactly (labels in any order). */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(`${name}{`)) continue
    const m = /^([^{]+)\{(.*)\} (\S+)/.exec(line)
    if (!m) continue
    const got = Object.fromEntries(
      [...(m[2] as string).matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]),
    )
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3])
  }
  return undefined
}

describe('Prometheus endpoint', () => {
  const queue = unique('prom')
  let prom: PrometheusEndpoint
  let statsCalls = 0
  let instrumented: App | undefined
  let text = ''

  beforeAll(async () => {
    prom = await startPrometheusExporter({ port: 0, host: '127.0.0.1' })
    const otel = errandOtel({ meterProvider: prom.meterProvider, traces: false })
    const app = createApp({
      broker: 'memory://',
      backend: 'memory://',
      tasks: [ok, bad, parked],
      defaultQueue: queue,
      logger: silentLogger,
      instrumentation: [otel],
    })
    otel.observeQueues(
      {
        stats: (q: string): Promise<QueueStats> => {
          statsCalls++
          return app.stats(q)
        },
        queues: () => app.queues(),
      },
      { intervalMs: 60_000 },
    )
    instrumented = app
    await app.worker({ concurrency: 4, queues: [queue] }).start()
    const results = await app.sendMany(Array.from({ length: 10 }, (_, i) => ok.s(i)))
    for (const r of results) await r.get({ timeoutMs: 5000 })
    await expect((await app.send(bad.s(1))).get({ timeoutMs: 5000 })).rejects.toMatchObject({
      code: 'ERR_TASK_FAILED',
    })
    await app.sendMany([parked.s(1), parked.s(2), parked.s(3)])
    text = await scrape(prom.url)
  })
  afterAll(async () => {
    await instrumented?.close()
    await prom?.close()
  })

  it('listens on 127.0.0.1 at the port it reports and serves 404 elsewhere', async () => {
    expect(prom.url).toBe(`http://127.0.0.1:${prom.port}/metrics`)
    expect((await fetch(`http://127.0.0.1:${prom.port}/other`)).status).toBe(404)
  })

  it('counts the workload exactly', () => {
    const t = (task: string) => ({ task, queue })
    expect(sample(text, 'errand_tasks_sent_total', t('prom.ok'))).toBe(10)
    expect(sample(text, 'errand_tasks_started_total', t('prom.ok'))).toBe(10)
    expect(sample(text, 'errand_tasks_succeeded_total', t('prom.ok'))).toBe(10)
    expect(sample(text, 'errand_tasks_failed_total', t('prom.ok'))).toBeUndefined()
    expect(sample(text, 'errand_tasks_sent_total', t('prom.bad'))).toBe(1)
    expect(sample(text, 'errand_tasks_started_total', t('prom.bad'))).toBe(2)
    expect(sample(text, 'errand_tasks_failed_total', t('prom.bad'))).toBe(2)
    expect(sample(text, 'errand_tasks_retried_total', t('prom.bad'))).toBe(1)
    expect(sample(text, 'errand_tasks_dead_lettered_total', { ...t('prom.bad'), reason: 'exhausted' })).toBe(
      1,
    )
    expect(sample(text, 'errand_task_run_time_count', t('prom.ok'))).toBe(10)
    expect(sample(text, 'errand_task_queue_wait_count', t('prom.ok'))).toBe(10)
  })

  it('reports queue gauges from one stats sample per queue per interval', async () => {
    expect(sample(text, 'errand_queue_dead', { queue })).toBe(1)
    expect(sample(text, 'errand_queue_ready', { queue })).toBe(0)
    expect(sample(text, 'errand_queue_ready', { queue: parked.queue as string })).toBe(3)
    const after = statsCalls
    const again = await scrape(prom.url)
    expect(statsCalls).toBe(after)
    expect(sample(again, 'errand_queue_ready', { queue: parked.queue as string })).toBe(3)
  })
})
