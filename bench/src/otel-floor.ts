/**
 * The floor under any OpenTelemetry instrumentation of a task attempt, for the `sdk-floor` row of
 * `otel-overhead.ts`: what the registered SDK costs per attempt when the wrapper around the
 * handler does the least an instrumentation following the messaging conventions must do, and
 * nothing of Errand's own. Per attempt: extract the parent from the headers, start one consumer
 * span with the same attributes `@errand/otel` sets, run the handler inside its context, set the
 * outcome, end the span, record two histograms (queue wait, run time) on a reused attribute
 * object. No producer spans (the bench fills its queue before the timed drain), no counters, no
 * chord links, no recent-run map.
 *
 * `sdk` minus `sdk-floor` is what Errand's instrumentation adds on top of the SDK's own cost.
 */
import type { Instrumentation, RunInfo } from '@errand/core'
import {
  type Attributes,
  context,
  type Histogram,
  metrics,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  type Tracer,
  trace,
} from '@opentelemetry/api'

/** A hand-written, minimal consumer-side instrumentation over the global SDK. */
export class FloorInstrumentation implements Instrumentation {
  private readonly tracer: Tracer = trace.getTracer('bench-floor')
  private readonly runTime: Histogram
  private readonly queueWait: Histogram
  private readonly attributes = new Map<string, Attributes>()

  constructor() {
    const meter = metrics.getMeter('bench-floor')
    this.runTime = meter.createHistogram('floor.run_time', { unit: 's' })
    this.queueWait = meter.createHistogram('floor.queue_wait', { unit: 's' })
  }

  wrapRun<T>(info: RunInfo, run: () => Promise<T>): Promise<T> {
    const t0 = performance.now()
    const attrs = this.attributesOf(info.task, info.queue)
    this.queueWait.record(Math.max(0, Date.now() - info.dueAt) / 1000, attrs)
    const parent = propagation.extract(ROOT_CONTEXT, info.headers)
    const span = this.tracer.startSpan(
      `process ${info.task}`,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          'messaging.system': 'errand',
          'messaging.operation.type': 'process',
          'messaging.operation.name': 'process',
          'messaging.destination.name': info.queue,
          'messaging.message.id': info.id,
          'messaging.message.conversation_id': info.root,
          'errand.task.name': info.task,
          'errand.attempt': info.attempt,
          'errand.max_attempts': info.maxAttempts,
        },
      },
      parent,
    )
    return context.with(trace.setSpan(parent, span), run).then(
      (out) => {
        span.setAttribute('errand.outcome', 'succeeded')
        span.end()
        this.runTime.record((performance.now() - t0) / 1000, attrs)
        return out
      },
      (err: unknown) => {
        span.setAttribute('errand.outcome', 'failed')
        span.end()
        this.runTime.record((performance.now() - t0) / 1000, attrs)
        throw err
      },
    )
  }

  private attributesOf(task: string, queue: string): Attributes {
    const key = `${task}\u0000${queue}`
    let a = this.attributes.get(key)
    if (!a) {
      a = { task, queue }
      this.attributes.set(key, a)
    }
    return a
  }
}
