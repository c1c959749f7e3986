import {
  type Context,
  isSpanContextValid,
  propagation,
  ROOT_CONTEXT,
  type SpanContext,
  TraceFlags,
  trace,
} from '@opentelemetry/api'

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

/**
 * Headers for a message sent from `ctx`: a copy of `headers` with `traceparent` (and
 * `tracestate`) from the global propagator, or, when none is registered (the API's no-op default),
 * a W3C `traceparent` written here, so traces still join up across processes. The old values are
 * dropped first: a workflow's headers travel from step to step and must not keep a stale parent.
 */
export function injectHeaders(
  ctx: Context,
  headers: Readonly<Record<string, string>> | undefined,
): Record<string, string> {
  const out: Record<string, string> = { ...headers }
  delete out.traceparent
  delete out.tracestate
  propagation.inject(ctx, out)
  if (out.traceparent === undefined) {
    const sc = trace.getSpanContext(ctx)
    if (sc && isSpanContextValid(sc)) out.traceparent = formatTraceparent(sc)
  }
  return out
}

/** The remote parent carried in `headers` (propagator first, then a plain `traceparent`), if any. */
export function extractContext(headers: Readonly<Record<string, string>> | undefined): Context | undefined {
  if (!headers || headers.traceparent === undefined) return undefined
  const ctx = propagation.extract(ROOT_CONTEXT, headers)
  if (trace.getSpanContext(ctx)) return ctx
  const m = TRACEPARENT.exec(headers.traceparent)
  if (!m) return undefined
  const sc: SpanContext = {
    traceId: m[1] as string,
    spanId: m[2] as string,
    traceFlags: Number.parseInt(m[3] as string, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  }
  return isSpanContextValid(sc) ? trace.setSpanContext(ROOT_CONTEXT, sc) : undefined
}

function formatTraceparent(sc: SpanContext): string {
  return `00-${sc.traceId}-${sc.spanId}-0${sc.traceFlags & TraceFlags.SAMPLED ? 1 : 0}`
}
