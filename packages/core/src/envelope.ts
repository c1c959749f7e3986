import { Buffer, isUtf8 } from 'node:buffer'
import { TextDecoder } from 'node:util'
import { z } from 'zod'
import { type PlainCandidate, plainEnvelope } from './envelope-plain.js'
import { DecodeError, PayloadTooLargeError } from './errors.js'

/** Current version of the wire envelope. */
export const ENVELOPE_VERSION = 1

/** Per-signature send options carried on the wire. */
export const wireOptionsSchema = z
  .object({
    queue: z.string().min(1).optional(),
    priority: z.number().int().min(0).optional(),
    countdownMs: z.number().int().min(0).optional(),
    timeoutMs: z.number().int().positive().optional(),
  })
  .strict()

/**
 * How a partial signature (`task.partial(bound)`) takes the previous step's output: without
 * `into`, the output's own fields fill the fields `input` leaves open (the bound fields win where
 * both have one); with `into`, the whole output goes under that field.
 */
export const wireMergeSchema = z.object({ into: z.string().min(1).max(200).optional() }).strict()

/**
 * A task, chain, group, chord or map, serialised. Ids are assigned when the canvas is sent.
 * `onError` / `onSuccess` are the callbacks linked with `.onError()` / `.onSuccess()`.
 */
export type WireNode =
  | {
      kind: 'task'
      id: string
      task: string
      input?: unknown
      /** Bound input that ignores the previous step's output (`.si()`). */
      immutable?: boolean
      /** A partial signature: `input` is the bound part, the previous output fills the rest. */
      merge?: z.infer<typeof wireMergeSchema>
      options?: z.infer<typeof wireOptionsSchema>
      onError?: WireNode[]
      onSuccess?: WireNode[]
    }
  | { kind: 'chain'; steps: WireNode[]; onError?: WireNode[]; onSuccess?: WireNode[] }
  | { kind: 'group'; id: string; members: WireNode[]; onError?: WireNode[]; onSuccess?: WireNode[] }
  | {
      kind: 'chord'
      id: string
      header: WireNode[]
      body: WireNode
      tolerant?: boolean
      onError?: WireNode[]
      onSuccess?: WireNode[]
    }
  | {
      /**
       * One task node applied to each element of an array (`map`, `starmap`, `chunks`): a group
       * made when the array is known. `items` binds the array (chunks); else it is the previous
       * step's output. `spread` names the fields a tuple element fills, in order (`starmap`).
       * `flatten`: the result is the members' arrays joined (chunks). The map's result is stored
       * under `id`.
       */
      kind: 'map'
      id: string
      node: WireNode
      items?: unknown[]
      spread?: string[]
      flatten?: boolean
      onError?: WireNode[]
      onSuccess?: WireNode[]
    }

export const wireNodeSchema: z.ZodType<WireNode> = z.lazy(() =>
  z.discriminatedUnion('kind', [
    z
      .object({
        kind: z.literal('task'),
        id: z.string().min(1),
        task: z.string().min(1),
        input: z.unknown().optional(),
        immutable: z.boolean().optional(),
        merge: wireMergeSchema.optional(),
        options: wireOptionsSchema.optional(),
        onError: z.array(wireNodeSchema).optional(),
        onSuccess: z.array(wireNodeSchema).optional(),
      })
      .strict(),
    z
      .object({
        kind: z.literal('chain'),
        steps: z.array(wireNodeSchema),
        onError: z.array(wireNodeSchema).optional(),
        onSuccess: z.array(wireNodeSchema).optional(),
      })
      .strict(),
    z
      .object({
        kind: z.literal('group'),
        id: z.string().min(1),
        members: z.array(wireNodeSchema),
        onError: z.array(wireNodeSchema).optional(),
        onSuccess: z.array(wireNodeSchema).optional(),
      })
      .strict(),
    z
      .object({
        kind: z.literal('chord'),
        id: z.string().min(1),
        header: z.array(wireNodeSchema),
        body: wireNodeSchema,
        tolerant: z.boolean().optional(),
        onError: z.array(wireNodeSchema).optional(),
        onSuccess: z.array(wireNodeSchema).optional(),
      })
      .strict(),
    z
      .object({
        kind: z.literal('map'),
        id: z.string().min(1),
        node: wireNodeSchema,
        items: z.array(z.unknown()).optional(),
        spread: z.array(z.string().min(1)).optional(),
        flatten: z.boolean().optional(),
        onError: z.array(wireNodeSchema).optional(),
        onSuccess: z.array(wireNodeSchema).optional(),
      })
      .strict(),
  ]),
) as z.ZodType<WireNode>

/**
 * What happens with a task's output, as a stack (last element first):
 * - `next`: start `node` with the output as its input;
 * - `join`: record the output as member `index` of group `group` (of `size`); the member that
 *   completes the group goes on down the stack with the array of outputs (`tolerant`: the array
 *   of outcomes, failures included);
 * - `onError`: on a final failure, send `node` with `{ taskId, error }`; skipped on success;
 * - `onSuccess`: on success, send `node` with the output and go on down the stack with the same
 *   output; skipped on failure;
 * - `result`: store the output as the result of task `id` (a map, chunks, or a task that handed
 *   its place to a canvas with `ctx.replace`), joined one level first when `flatten`, and go on;
 *   on failure store the failure under `id` and go on.
 *
 * A worker that does not know a frame refuses the whole message when decoding it (schema
 * mismatch: dead letter `undecodable`, its handle settled with the error), never half-runs it.
 */
export type WireFrame =
  | { t: 'next'; node: WireNode }
  | { t: 'join'; group: string; index: number; size: number; tolerant?: boolean }
  | { t: 'onError'; node: WireNode }
  | { t: 'onSuccess'; node: WireNode }
  | { t: 'result'; id: string; task?: string; flatten?: boolean }

export const wireFrameSchema: z.ZodType<WireFrame> = z.discriminatedUnion('t', [
  z.object({ t: z.literal('next'), node: wireNodeSchema }).strict(),
  z
    .object({
      t: z.literal('join'),
      group: z.string().min(1),
      index: z.number().int().min(0),
      size: z.number().int().positive(),
      tolerant: z.boolean().optional(),
    })
    .strict(),
  z.object({ t: z.literal('onError'), node: wireNodeSchema }).strict(),
  z.object({ t: z.literal('onSuccess'), node: wireNodeSchema }).strict(),
  z
    .object({
      t: z.literal('result'),
      id: z.string().min(1).max(200),
      task: z.string().min(1).max(200).optional(),
      flatten: z.boolean().optional(),
    })
    .strict(),
]) as z.ZodType<WireFrame>

/**
 * The versioned JSON envelope every message carries. A producer or worker in another language
 * takes part by following this schema (published as JSON Schema in `wire-schema.json`).
 */
export const envelopeSchema = z
  .object({
    v: z.literal(ENVELOPE_VERSION),
    /** Task id: results, cancellation and dedup are keyed by it. Stable across retries. */
    id: z.string().min(1).max(200),
    task: z.string().min(1).max(200),
    /**
     * The task's input, any JSON. Absent when the input is `undefined` (a `z.void()` task, or a
     * chain step after a handler that returned nothing): JSON has no `undefined`.
     */
    input: z.unknown().optional(),
    queue: z.string().min(1).max(200),
    /** 1 on the first run; core adds one per retry. */
    attempt: z.number().int().min(1),
    /** Not before this time (ms since epoch). */
    eta: z.number().int().optional(),
    /** Dead-letter as expired if first reached after this time (ms since epoch): `send({ expiresInMs })`. */
    expiresAt: z.number().int().optional(),
    priority: z.number().int().min(0).optional(),
    timeoutMs: z.number().int().positive().optional(),
    /** Free-form string headers; W3C `traceparent` travels here. */
    headers: z.record(z.string(), z.string()).optional(),
    root: z.string().optional(),
    parent: z.string().optional(),
    /**
     * Times a worker sent the task back because a rate or concurrency limit had no room: later
     * waits spread out more. Absent when never.
     */
    deferrals: z.number().int().min(1).optional(),
    /** A debounced send's key: the worker runs the task only if it is still the key's latest send. */
    debounce: z.string().min(1).optional(),
    /** Continuation stack, see {@link WireFrame}; the last element applies first. */
    stack: z.array(wireFrameSchema).optional(),
    createdAt: z.number().int(),
  })
  .strict()

/** A decoded envelope. */
export type Envelope = z.infer<typeof envelopeSchema>

/** Default cap on an envelope's size when decoding: 10 MiB. */
export const DEFAULT_MAX_ENVELOPE_BYTES = 10 * 1024 * 1024

/** Serialise an envelope to UTF-8 JSON bytes. */
export function encodeEnvelope(envelope: Envelope): Uint8Array {
  // Buffer is a Uint8Array; Buffer.from is several times faster than TextEncoder for small strings.
  return Buffer.from(JSON.stringify(envelope), 'utf8')
}

function rejectProtoKeys(key: string, value: unknown): unknown {
  if (key === '__proto__') throw new DecodeError('envelope contains a "__proto__" key')
  return value
}

/**
 * A strict UTF-8 decoder (refuses what `isUtf8` refuses; a BOM stays in the text, so JSON refuses
 * it as before); one call instead of a check, a Buffer view and a copy. Undefined on a Node built
 * without the ICU it needs.
 */
const strictUtf8: TextDecoder | undefined = (() => {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
  } catch {
    return undefined
  }
})()

/** `bytes` as text; a {@link DecodeError} when they are not valid UTF-8. */
function utf8Text(bytes: Uint8Array): string {
  if (strictUtf8 !== undefined) {
    try {
      return strictUtf8.decode(bytes)
    } catch {
      throw new DecodeError('message is not valid UTF-8')
    }
  }
  if (!isUtf8(bytes)) throw new DecodeError('message is not valid UTF-8')
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')
}

/**
 * Decode and validate bytes from a queue. Throws {@link DecodeError} (bad UTF-8, bad JSON,
 * `__proto__` keys, unknown version, schema mismatch) or {@link PayloadTooLargeError}; the worker
 * turns either into a dead letter with the reason, never a crash.
 */
export function decodeEnvelope(bytes: Uint8Array, maxBytes = DEFAULT_MAX_ENVELOPE_BYTES): Envelope {
  if (bytes.byteLength > maxBytes) throw new PayloadTooLargeError(bytes.byteLength, maxBytes)
  const text = utf8Text(bytes)
  let raw: unknown
  try {
    // A reviver makes JSON.parse several times slower: only pay for it when the key may be there
    // (spelt out, or hidden behind a \u escape).
    const suspicious = text.includes('__proto__') || text.includes('\\u')
    raw = suspicious ? JSON.parse(text, rejectProtoKeys) : JSON.parse(text)
  } catch (cause) {
    if (cause instanceof DecodeError) throw cause
    throw new DecodeError(`message is not JSON: ${(cause as Error).message}`, { cause })
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new DecodeError('message is not a JSON object')
  }
  const id = (raw as { id?: unknown }).id
  const named = { taskId: typeof id === 'string' && id.length > 0 && id.length <= 200 ? id : undefined }
  const version = (raw as { v?: unknown }).v
  if (version !== ENVELOPE_VERSION) {
    throw new DecodeError(`unknown envelope version ${JSON.stringify(version) ?? 'undefined'}`, named)
  }
  const fast = plainEnvelope(raw as PlainCandidate)
  if (fast !== undefined) return fast
  const parsed = envelopeSchema.safeParse(raw)
  if (!parsed.success) {
    const first = parsed.error.issues[0]
    const where = first && first.path.length > 0 ? first.path.join('.') : '(root)'
    throw new DecodeError(
      `envelope does not match its schema at ${where}: ${first?.message ?? 'invalid'}`,
      named,
    )
  }
  return parsed.data
}

/** The envelope's JSON Schema (draft 2020-12), for producers and workers in other languages. */
export function envelopeJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(envelopeSchema, { unrepresentable: 'any' }) as Record<string, unknown>
}
