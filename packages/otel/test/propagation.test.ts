import { createApp, defineTask, silentLogger } from '@errand/core'
import { propagation, ROOT_CONTEXT, TraceFlags, trace } from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { afterAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { errandOtel, extractContext, injectHeaders } from '../src/index.js'
import { unique } from './helpers.js'

const seen: Record<string, Record<string, string>> = {}
const echo = defineTask({
  name: 'prop.echo',
  input: z.string(),
  handler: (key: string, ctx) => {
    seen[key] = { ...ctx.headers }
    return key
  },
})

const parent = trace.setSpanContext(ROOT_CONTEXT, {
  traceId: '0af7651916cd43dd8448eb211c80319c',
  spanId: 'b7ad6b7169203331',
  traceFlags: TraceFlags.SAMPLED,
})

describe('context in the headers', () => {
  afterAll(() => {
    propagation.disable()
    trace.disable()
  })

  it('without a propagator, traceparent is written in W3C form and read back; stale values are replaced', () => {
    const headers = injectHeaders(parent, { tenant: 'a', traceparent: 'stale', tracestate: 'stale=1' })
    expect(headers).toEqual({
      tenant: 'a',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    })
    expect(trace.getSpanContext(extractContext(headers) ?? ROOT_CONTEXT)).toMatchObject({
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      isRemote: true,
    })
    expect(extractContext({ traceparent: 'garbage' })).toBeUndefined()
    expect(extractContext({})).toBeUndefined()
  })

  it('with the W3C propagator registered, it writes traceparent and tracestate', () => {
    propagation.setGlobalPropagator(new W3CTraceContextPropagator())
    const withState = trace.setSpanContext(ROOT_CONTEXT, {
      ...(trace.getSpanContext(parent) as NonNullable<ReturnType<typeof trace.getSpanContext>>),
      traceState: new (class {
        set() {
          return this
        }
        unset() {
          return this
        }
        get() {
          return undefined
        }
        serialize() {
          return 'vendor=x'
        }
      })(),
    })
    const headers = injectHeaders(withState, {})
    expect(headers).toEqual({
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      tracestate: 'vendor=x',
    })
    expect(trace.getSpanContext(extractContext(headers) ?? ROOT_CONTEXT)?.traceState?.serialize()).toBe(
      'vendor=x',
    )
    propagation.disable()
  })

  it('with no SDK registered, nothing is written into the headers; once one registers, spans start', async () => {
    const otel = errandOtel({ metrics: false })
    const app = createApp({
      broker: 'memory://',
      tasks: [echo],
      defaultQueue: unique('prop'),
      logger: silentLogger,
      instrumentation: [otel],
    })
    await app.worker().start()
    try {
      await app.send(echo.s('before'), { headers: { tenant: 'a' } })
      await until(() => seen.before !== undefined)
      expect(seen.before).toEqual({ tenant: 'a' })
      const exporter = new InMemorySpanExporter()
      trace.setGlobalTracerProvider(
        new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
      )
      await app.send(echo.s('after'))
      await until(() => exporter.getFinishedSpans().some((s) => s.name === 'process prop.echo'))
      expect(seen.after?.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
      expect(
        exporter
          .getFinishedSpans()
          .map((s) => s.name)
          .sort(),
      ).toEqual(['process prop.echo', 'send prop.echo'])
    } finally {
      await app.close()
    }
  })
})

/** Resolves when `predicate` holds, checking on every timer turn (bounded). */
async function until(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const start = Date.now()
  while (!predicate()) {
    if (Date.now() - start > timeoutMs) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 5))
  }
}
