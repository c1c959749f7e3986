import type { Envelope, RunInfo } from '@errand/core'
import {
  type AttributeValue,
  type Context,
  context,
  type Link,
  ProxyTracerProvider,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  type TracerProvider,
  trace,
} from '@opentelemetry/api'
import { ATTR, type AttrName, MESSAGING_SYSTEM } from './attributes.js'
import type { FailedAttempt } from './outcome.js'
import { extractContext, injectHeaders } from './propagation.js'

/** Most process spans remembered for parenting what their settlement publishes. */
const MAX_REMEMBERED_RUNS = 4096
/** Most chords whose members' spans are kept for the callback's links. */
const MAX_OPEN_GROUPS = 1024
/** The API's no-op provider: what the global proxy delegates to until an SDK registers. */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate()

/**
 * What a later publish needs of an attempt: its span's context (the parent of what its settlement
 * publishes), not the span. Keeping the span itself kept thousands of ended spans, with their
 * attributes, alive past the young generation: with the SDK, old-generation collections were the
 * largest single cost of an attempt on the no-op drain.
 */
interface RecentRun {
  readonly spanContext: SpanContext
  readonly group: RunInfo['group']
}

/**
 * Producer spans on publish (context injected into each envelope's headers) and one consumer
 * span per attempt.
 *
 * Why a map of recent runs: the worker stores a task's outcome and publishes the next step *after*
 * the attempt's `wrapRun` returned, outside the span's context. The published envelope names the
 * task that started it (`parent`, or its own `id` for a retry), so its producer span is parented
 * on that task's process span from this map (bounded; evicted oldest first). The same map says
 * when a publish completes a chord (the parent was a group member), to link the callback to the
 * members' spans (those that ran in this process, at most `maxLinks`).
 */
export class ErrandTracing {
  // Two generations: when the newer is full it becomes the older and the oldest is dropped whole
  // (a per-insert eviction walked an iterator each time: 5% of an attempt's tracing cost).
  private recentRuns = new Map<string, RecentRun>()
  private olderRuns = new Map<string, RecentRun>()
  private readonly members = new Map<string, SpanContext[]>()

  private readonly tracer: Tracer

  constructor(
    private readonly provider: TracerProvider,
    private readonly maxLinks: number,
    scope: string,
    version: string,
  ) {
    this.tracer = provider.getTracer(scope, version)
  }

  /**
   * False while the global provider is the API's no-op (no SDK registered; checked on every call,
   * since an SDK may register later): then nothing is built or written into headers. Measured on
   * the memory drain at concurrency 50: the no-op API calls with their attribute objects, context
   * objects and copied headers cost about 15% CPU per job; this check costs nothing measurable.
   */
  get enabled(): boolean {
    const p = this.provider
    return !(p instanceof ProxyTracerProvider && p.getDelegate() === NOOP_PROVIDER)
  }

  /** Start a producer span per envelope and write its context into the envelope's headers. */
  publish(envelopes: readonly Envelope[]): void {
    if (!this.enabled) return
    const active = context.active()
    // Messages of one new group or chord published together share a `send` batch span, so the
    // workflow lands in one trace (each member is its own root: lineage starts at the member).
    let fresh: Map<string, number> | undefined
    let batches: Map<string, Context> | undefined
    if (envelopes.length > 1) {
      fresh = new Map()
      for (const env of envelopes) {
        if (this.parentOf(env, active) === undefined) {
          const key = batchKey(env)
          fresh.set(key, (fresh.get(key) ?? 0) + 1)
        }
      }
    }
    for (const env of envelopes) {
      let parent = this.parentOf(env, active)
      let operation: 'send' | 'create' = 'send'
      const key = batchKey(env)
      if (parent === undefined && (fresh?.get(key) ?? 0) > 1) {
        batches ??= new Map()
        parent = batches.get(key)
        if (parent === undefined) {
          const batch = this.tracer.startSpan('send', {
            kind: SpanKind.PRODUCER,
            attributes: {
              [ATTR.system]: MESSAGING_SYSTEM,
              [ATTR.operationType]: 'send',
              [ATTR.operationName]: 'send',
              [ATTR.batchCount]: fresh?.get(key) ?? 0,
            },
          })
          batch.end()
          parent = trace.setSpan(ROOT_CONTEXT, batch)
          batches.set(key, parent)
        }
        operation = 'create'
      }
      const links = this.chordLinks(env)
      const span = this.tracer.startSpan(
        `${operation} ${env.task}`,
        { kind: SpanKind.PRODUCER, attributes: messageAttributes(env, operation), ...(links && { links }) },
        parent ?? ROOT_CONTEXT,
      )
      span.end()
      env.headers = injectHeaders(trace.setSpan(parent ?? ROOT_CONTEXT, span), env.headers)
    }
  }

  /** Start the consumer span of one attempt; the handler runs in the returned context. */
  startRun(info: RunInfo): { span: Span; ctx: Context } | undefined {
    if (!this.enabled) return undefined
    const parent = extractContext(info.headers) ?? ROOT_CONTEXT
    // Literal keys (the values of ATTR, checked by the type): with computed `[ATTR.x]` keys V8
    // builds the object key by key, about a microsecond an attempt; a literal is one allocation.
    const attributes: SpanAttributes = {
      'messaging.system': MESSAGING_SYSTEM,
      'messaging.operation.type': 'process',
      'messaging.operation.name': 'process',
      'messaging.destination.name': info.queue,
      'messaging.message.id': info.id,
      'messaging.message.conversation_id': info.root,
      'errand.task.name': info.task,
      'errand.attempt': info.attempt,
      'errand.max_attempts': info.maxAttempts,
    }
    if (info.parent !== undefined) attributes['errand.parent_id'] = info.parent
    if (info.group) {
      attributes['errand.group.id'] = info.group.id
      attributes['errand.group.index'] = info.group.index
      attributes['errand.group.size'] = info.group.size
    }
    const span = this.tracer.startSpan(
      `process ${info.task}`,
      { kind: SpanKind.CONSUMER, attributes },
      parent,
    )
    if (info.attempt > 1) span.addEvent('errand.retry', { [ATTR.attempt]: info.attempt })
    this.remember(info, span)
    return { span, ctx: trace.setSpan(parent, span) }
  }

  /** End an attempt's span that succeeded. */
  succeeded(span: Span): void {
    span.setAttribute(ATTR.outcome, 'succeeded')
    span.end()
  }

  /** End an attempt's span that threw: ERROR status, the exception, and what comes of it. */
  failed(span: Span, err: unknown, failure: FailedAttempt, info: RunInfo): void {
    span.recordException(err instanceof Error ? err : String(err))
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) })
    span.setAttribute(ATTR.outcome, failure.outcome)
    if (failure.outcome === 'retried')
      span.addEvent('errand.retry_scheduled', { [ATTR.attempt]: info.attempt + 1 })
    if (failure.reason !== undefined) {
      span.setAttribute(ATTR.deadLetterReason, failure.reason)
      span.addEvent('errand.dead_letter', { [ATTR.deadLetterReason]: failure.reason })
    }
    span.end()
  }

  private parentOf(env: Envelope, active: Context): Context | undefined {
    const run = this.recent(env.id) ?? (env.parent === undefined ? undefined : this.recent(env.parent))
    if (run) return trace.setSpanContext(ROOT_CONTEXT, run.spanContext)
    if (trace.getSpan(active)) return active
    return extractContext(env.headers)
  }

  /** Links to the members' spans when `env` is what a chord member's settlement started. */
  private chordLinks(env: Envelope): Link[] | undefined {
    if (env.parent === undefined || this.recent(env.id)) return undefined
    const group = this.recent(env.parent)?.group
    if (!group) return undefined
    const spans = this.members.get(group.id)
    if (!spans) return undefined
    this.members.delete(group.id)
    return spans.map((sc) => ({ context: sc, attributes: { [ATTR.groupId]: group.id } }))
  }

  private recent(id: string): RecentRun | undefined {
    return this.recentRuns.get(id) ?? this.olderRuns.get(id)
  }

  private remember(info: RunInfo, span: Span): void {
    if (this.recentRuns.size >= MAX_REMEMBERED_RUNS / 2) {
      this.olderRuns = this.recentRuns
      this.recentRuns = new Map()
    }
    const spanContext = span.spanContext()
    this.recentRuns.set(info.id, { spanContext, group: info.group })
    if (!info.group) return
    let spans = this.members.get(info.group.id)
    if (!spans) {
      spans = []
      this.members.set(info.group.id, spans)
      if (this.members.size > MAX_OPEN_GROUPS) this.members.delete(this.members.keys().next().value as string)
    }
    if (spans.length < this.maxLinks) spans.push(spanContext)
  }
}

/** Attributes Errand sets, by their names in {@link ATTR} (a typo in a literal key fails to compile). */
type SpanAttributes = { [K in AttrName]?: AttributeValue }

function messageAttributes(env: Envelope, operation: 'send' | 'create'): SpanAttributes {
  const a: SpanAttributes = {
    'messaging.system': MESSAGING_SYSTEM,
    'messaging.operation.type': operation,
    'messaging.operation.name': operation,
    'messaging.destination.name': env.queue,
    'messaging.message.id': env.id,
    'messaging.message.conversation_id': env.root ?? env.id,
    'errand.task.name': env.task,
  }
  if (env.attempt > 1) a['errand.attempt'] = env.attempt
  if (env.parent !== undefined) a['errand.parent_id'] = env.parent
  return a
}

/** Members of one group (the join frame on top of their stacks) batch together; others by root. */
function batchKey(env: Envelope): string {
  const top = env.stack?.[env.stack.length - 1]
  return top?.t === 'join' ? `group:${top.group}` : `root:${env.root ?? env.id}`
}
