import type { RunInfo } from '@errand/core'
import { metrics } from '@opentelemetry/api'
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics'
import { afterAll, describe, expect, it } from 'vitest'
import { errandOtel, METRIC } from '../src/index.js'

const info: RunInfo = {
  id: 'id-1',
  task: 'nosdk.task',
  queue: 'nosdk',
  attempt: 1,
  maxAttempts: 3,
  headers: {},
  root: 'id-1',
  parent: undefined,
  createdAt: Date.now(),
  dueAt: Date.now(),
  group: undefined,
}

describe('with no SDK registered', () => {
  afterAll(() => metrics.disable())

  it('an attempt runs bare: wrapRun hands back the promise the run made, settled or failed', async () => {
    const otel = errandOtel()
    const ok = Promise.resolve(7)
    expect(otel.wrapRun(info, () => ok)).toBe(ok)
    const bad = Promise.reject(new Error('boom'))
    const wrapped = otel.wrapRun(info, () => bad)
    expect(wrapped).toBe(bad)
    await expect(wrapped).rejects.toThrow('boom')
  })

  it('a meter provider given (or registered before errandOtel) still gets the task metrics', async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 })
    const meterProvider = new MeterProvider({ readers: [reader] })
    metrics.setGlobalMeterProvider(meterProvider)
    const otel = errandOtel()
    await otel.wrapRun(info, async () => 1)
    await expect(otel.wrapRun(info, async () => Promise.reject(new Error('again')))).rejects.toThrow('again')
    await reader.forceFlush()
    const names = exporter
      .getMetrics()
      .flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics.map((m) => m.descriptor.name)))
    expect(names).toEqual(
      expect.arrayContaining([METRIC.started, METRIC.succeeded, METRIC.retried, METRIC.runTime]),
    )
    await meterProvider.shutdown()
  })
})
