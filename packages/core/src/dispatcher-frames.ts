import type { WireFrame, WireNode } from './envelope.js'

// Helpers on continuation frames shared by planning and the continuation walks; pure.

/** The task name stored on the record of a map's (or chunks') result. */
export const MAP_TASK = 'errand.map'

/** `stack` with the frames of `node`'s error and success callbacks on top. */
export function linkFrames(node: WireNode, stack: readonly WireFrame[]): readonly WireFrame[] {
  if (!node.onError?.length && !node.onSuccess?.length) return stack
  const frames = [...stack]
  for (const n of node.onError ?? []) frames.push({ t: 'onError', node: n })
  for (const n of node.onSuccess ?? []) frames.push({ t: 'onSuccess', node: n })
  return frames
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/**
 * The input of a partial signature's task: its bound fields merged with the previous output.
 * Without `into`, the previous output's fields come first and the bound fields overwrite them
 * (bound wins: what the author wrote at the call site is what runs); a previous output that is not
 * a plain object contributes nothing, so the worker's schema check names the missing fields
 * (`invalid-input`). With `into`, the whole previous output is that one field.
 */
export function mergeInput(node: Extract<WireNode, { kind: 'task' }>, previous: unknown): unknown {
  const bound = isPlainObject(node.input) ? node.input : {}
  const into = node.merge?.into
  if (into !== undefined) return { ...bound, [into]: previous }
  return isPlainObject(previous) ? { ...previous, ...bound } : { ...bound }
}

/** What a `result` frame stores: the value going on (joined one level when `flatten`). */
export function resultValue(frame: Extract<WireFrame, { t: 'result' }>, value: unknown): unknown {
  if (!frame.flatten || !Array.isArray(value)) return value
  return value.flat(1)
}
