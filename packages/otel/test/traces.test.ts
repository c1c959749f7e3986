import { chain, chord, defineTask } from '@errand/core'
import { context, SpanStatusCode, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { errandOtel } from '../src/index.js'
import { memoryStore, redisStore, spanTree, unique } from './helpers.js'

const exporter = new InMemorySpanExporter()
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
const userTracer = provider.getTracer('user-code')
// The Node SDK registers this context manager; without one no context survives an await.
const contextManager = new AsyncLocalStorageContextManager().enable()
beforeAll(() => {
  context.setGlobalContextManager(contextManager)
})
afterAll(() => {
  context.disable()
})
beforeEach(() => exporter.reset())

const inc = defineTask({
  name: 'otel.inc',
  input: z.number(),
  handler: async (n: number) => {
    // A span the handler makes nests under the attempt's process span.
    await userTracer.startActiveSpan('user work', async (span) => {
      await Promise.resolve()
      span.end()
    })
    return n + 1
  },
})
const total = defineTask({
  name: 'otel.total',
  input: z.array(z.number()),
  handler: (ns: number[]) => ns.reduce((a, b) => a + b, 0),
})
const failing = defineTask({
  name: 'otel.failing',
  input: z.number(),
  retry: { attempts: 2, backoff: { type: 'fixed', delayMs: 1 } },
  handler: () => {
    throw new Error('always fails')
  },
})

const byId = (spans: readonly ReadableSpan[]) => new Map(spans.map((s) => [s.spanContext().spanId, s]))
const parentOf = (spans: readonly ReadableSpan[], s: ReadableSpan) =>
  byId(spans).get(s.parentSpanContext?.spanId ?? '')

for (const makeStore of [memoryStore, redisStore]) {
  const store = makeStore()
  describe(`traces on ${store.name}`, () => {
    const otel = errandOtel({ tracerProvider: provider, metrics: false })
    const app = store.app([inc, total, failing], otel, unique('otel-traces'))
    beforeAll(async () => {
      await app.worker({ concurrency: 8 }).start()
    })
    afterAll(async () => {
      await app.close()
      await store.cleanup()
    })

    it('a chain of 3 is one trace: send → process → send → process → send → process, user spans inside', async () => {
      const r = await app.send(chain(inc.s(1), inc.s(), inc.s()))
      expect(await r.get({ timeoutMs: 10_000 })).toBe(4)
      const spans = exporter.getFinishedSpans()
      expect(new Set(spans.map((s) => s.spanContext().traceId)).size).toBe(1)
      expect(spanTree(spans)).toBe(
        [
          'send otel.inc [producer]',
          '  process otel.inc [consumer]',
          '    send otel.inc [producer]',
          '      process otel.inc [consumer]',
          '        send otel.inc [producer]',
          '          process otel.inc [consumer]',
          '            user work [internal]',
          '        user work [internal]',
          '    user work [internal]',
        ].join('\n'),
      )
      const process = spans.filter((s) => s.name === 'process otel.inc')
      for (const p of process) {
        expect(p.attributes).toMatchObject({
          'messaging.system': 'errand',
          'messaging.operation.type': 'process',
          'messaging.destination.name': expect.any(String),
          'messaging.message.id': expect.any(String),
          'errand.task.name': 'otel.inc',
          'errand.attempt': 1,
          'errand.outcome': 'succeeded',
        })
        expect(parentOf(spans, p)?.attributes['messaging.message.id']).toBe(
          p.attributes['messaging.message.id'],
        )
      }
      const send = spans.find((s) => s.name === 'send otel.inc' && s.parentSpanContext === undefined)
      expect(send?.attributes).toMatchObject({
        'messaging.operation.type': 'send',
        'messaging.system': 'errand',
      })
    })

    it('a chord of 10 is one trace; its callback links to the 10 members', async () => {
      const members = Array.from({ length: 10 }, (_, i) => inc.s(i))
      const r = await app.send(chord(members, total.s()))
      expect(await r.get({ timeoutMs: 10_000 })).toBe(55)
      const spans = exporter.getFinishedSpans().filter((s) => s.name !== 'user work')
      expect(new Set(spans.map((s) => s.spanContext().traceId)).size).toBe(1)
      const batch = spans.find((s) => s.name === 'send')
      expect(batch?.attributes['messaging.batch.message_count']).toBe(10)
      const creates = spans.filter((s) => s.name === 'create otel.inc')
      expect(creates).toHaveLength(10)
      for (const c of creates) expect(parentOf(spans, c)).toBe(batch)
      const memberRuns = spans.filter((s) => s.name === 'process otel.inc')
      expect(memberRuns).toHaveLength(10)
      for (const m of memberRuns) expect(creates).toContain(parentOf(spans, m))
      const callbackSend = spans.find((s) => s.name === 'send otel.total')
      expect(memberRuns).toContain(parentOf(spans, callbackSend as ReadableSpan))
      expect(new Set(callbackSend?.links.map((l) => l.context.spanId))).toEqual(
        new Set(memberRuns.map((m) => m.spanContext().spanId)),
      )
      const callbackRun = spans.find((s) => s.name === 'process otel.total')
      expect(parentOf(spans, callbackRun as ReadableSpan)).toBe(callbackSend)
      expect(
        memberRuns.map((m) => m.attributes['errand.group.index']).sort((a, b) => Number(a) - Number(b)),
      ).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    })

    it('a failing task: ERROR status, the retry and the dead letter recorded', async () => {
      const r = await app.send(failing.s(1))
      await expect(r.get({ timeoutMs: 10_000 })).rejects.toMatchObject({ code: 'ERR_TASK_FAILED' })
      const runs = exporter
        .getFinishedSpans()
        .filter((s) => s.name === 'process otel.failing')
        .sort((a, b) => Number(a.attributes['errand.attempt']) - Number(b.attributes['errand.attempt']))
      expect(runs.map((s) => [s.attributes['errand.attempt'], s.attributes['errand.outcome']])).toEqual([
        [1, 'retried'],
        [2, 'dead-lettered'],
      ])
      for (const s of runs) {
        expect(s.status.code).toBe(SpanStatusCode.ERROR)
        expect(s.events.some((e) => e.name === 'exception')).toBe(true)
      }
      const [first, second] = runs as [ReadableSpan, ReadableSpan]
      expect(first.events.map((e) => e.name)).toContain('errand.retry_scheduled')
      expect(second.events.map((e) => e.name)).toEqual(
        expect.arrayContaining(['errand.retry', 'errand.dead_letter']),
      )
      expect(second.attributes['errand.dead_letter.reason']).toBe('exhausted')
      // The retry's producer span is a child of the failed attempt; both attempts share the trace.
      const retrySend = parentOf(exporter.getFinishedSpans(), second)
      expect(parentOf(exporter.getFinishedSpans(), retrySend as ReadableSpan)).toBe(first)
    })

    it("a send inside an active span continues the caller's trace", async () => {
      const tracer = trace.getTracer('caller', '1')
      void tracer
      await userTracer.startActiveSpan('http request', async (span) => {
        const r = await app.send(inc.s(5))
        expect(await r.get({ timeoutMs: 10_000 })).toBe(6)
        span.end()
      })
      const spans = exporter.getFinishedSpans()
      const root = spans.find((s) => s.name === 'http request')
      const send = spans.find((s) => s.name === 'send otel.inc')
      expect(parentOf(spans, send as ReadableSpan)).toBe(root)
      expect(new Set(spans.map((s) => s.spanContext().traceId)).size).toBe(1)
    })
  })
}
