import type { Envelope } from './envelope.js'

// decodeEnvelope's fast path: the common envelope checked by hand before the zod schema. Apart from
// envelope.ts so that file reads as the wire format; only a type comes from there (no import cycle).

/** A parsed JSON object whose version the caller has already checked. */
export type PlainCandidate = Record<string, unknown> & { readonly v: Envelope['v'] }

/** A safe integer (what `z.number().int()` accepts), not -0. */
function isInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && (x !== 0 || 1 / x > 0)
}

function isName(x: unknown): x is string {
  return typeof x === 'string' && x.length >= 1 && x.length <= 200
}

/**
 * The common envelope (no stack, no unknown field), checked by hand with exactly the schema's
 * rules and built as the schema builds it (its fields in schema order, headers copied); anything
 * else, and anything that fails a check, is undefined and left to the schema, which also words
 * the error. The worker decodes every message: the schema's walk was most of a decode.
 */
export function plainEnvelope(raw: PlainCandidate): Envelope | undefined {
  let fields = 0
  for (const key in raw) {
    if (!PLAIN_FIELDS.has(key)) return undefined
    fields++
  }
  const { id, task, input, queue, attempt, eta, expiresAt, priority, timeoutMs, headers } = raw
  const { root, parent, deferrals, debounce, createdAt } = raw
  if (!isName(id) || !isName(task) || !isName(queue) || !isInt(attempt) || attempt < 1 || !isInt(createdAt))
    return undefined
  const env = { v: raw.v, id, task } as Envelope
  let seen = 6
  if ('input' in raw) {
    env.input = input
    seen++
  }
  env.queue = queue
  env.attempt = attempt
  if (eta !== undefined) {
    if (!isInt(eta)) return undefined
    env.eta = eta
    seen++
  }
  if (expiresAt !== undefined) {
    if (!isInt(expiresAt)) return undefined
    env.expiresAt = expiresAt
    seen++
  }
  if (priority !== undefined) {
    if (!isInt(priority) || priority < 0) return undefined
    env.priority = priority
    seen++
  }
  if (timeoutMs !== undefined) {
    if (!isInt(timeoutMs) || timeoutMs <= 0) return undefined
    env.timeoutMs = timeoutMs
    seen++
  }
  if (headers !== undefined) {
    if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) return undefined
    const copy: Record<string, string> = {}
    for (const key in headers) {
      const value = (headers as Record<string, unknown>)[key]
      if (typeof value !== 'string') return undefined
      copy[key] = value
    }
    env.headers = copy
    seen++
  }
  if (root !== undefined) {
    if (typeof root !== 'string') return undefined
    env.root = root
    seen++
  }
  if (parent !== undefined) {
    if (typeof parent !== 'string') return undefined
    env.parent = parent
    seen++
  }
  if (deferrals !== undefined) {
    if (!isInt(deferrals) || deferrals < 1) return undefined
    env.deferrals = deferrals
    seen++
  }
  if (debounce !== undefined) {
    if (typeof debounce !== 'string' || debounce.length < 1) return undefined
    env.debounce = debounce
    seen++
  }
  env.createdAt = createdAt
  // A field present with a value JSON cannot give (only `null` here) is the schema's to refuse.
  return seen === fields ? env : undefined
}

/** The fields {@link plainEnvelope} checks itself: all but the continuation stack. */
const PLAIN_FIELDS: ReadonlySet<string> = new Set([
  'v',
  'id',
  'task',
  'input',
  'queue',
  'attempt',
  'eta',
  'expiresAt',
  'priority',
  'timeoutMs',
  'headers',
  'root',
  'parent',
  'deferrals',
  'debounce',
  'createdAt',
])
