import type { Dispatcher, Lineage, Upstream } from './dispatcher.js'
import type { Envelope, WireFrame, WireNode } from './envelope.js'
import { type SerializedError, serializeError, ValidationError } from './errors.js'
import type { ResultBackend } from './result-backend.js'

/** What a map needs of the dispatcher. */
type FrameDispatcher = Pick<Dispatcher, 'plan' | 'fail'>

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

/** A copy of task node `template` bound to `value` (a map member), with id `id`. */
function bindMember(template: Extract<WireNode, { kind: 'task' }>, value: unknown, id: string): WireNode {
  const { merge: _merge, immutable: _immutable, onError: _e, onSuccess: _s, ...rest } = template
  const input = template.merge ? mergeInput(template, value) : value
  return { ...rest, id, input }
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}

/** Why a map cannot run over `items`, or undefined. */
function mapProblem(node: Extract<WireNode, { kind: 'map' }>, items: unknown): string | undefined {
  if (!Array.isArray(items))
    return `expected the previous step's output to be an array, got ${describe(items)}`
  if (node.node.kind !== 'task') return 'the mapped node must be a task'
  if (node.spread) {
    const bad = items.findIndex((e) => !Array.isArray(e))
    if (bad !== -1) {
      return `starmap: every element must be an array (a tuple of ${node.spread.join(', ')}); element ${bad} is ${describe(items[bad])}`
    }
  }
  return undefined
}

/**
 * Start a map node: a group of one member per element, made now that the array is known. Member
 * ids are derived from the map's id (`<id>.<index>`), so planning the same map twice (the step
 * before it ran again after a crash) publishes the same tasks, which the group counts once. The
 * result (the members' outputs in order, joined one level for chunks) is stored under the map's
 * id by a `result` frame, which is what the map's handle waits for.
 */
export async function planMap(
  d: FrameDispatcher,
  node: Extract<WireNode, { kind: 'map' }>,
  upstream: Upstream,
  stack: readonly WireFrame[],
  lineage: Lineage,
  out: Envelope[],
): Promise<void> {
  const result: WireFrame = node.flatten
    ? { t: 'result', id: node.id, task: MAP_TASK, flatten: true }
    : { t: 'result', id: node.id, task: MAP_TASK }
  const settled = [...stack, result]
  const items = node.items ?? (upstream.has ? upstream.value : undefined)
  const template = node.node
  const problem = mapProblem(node, items)
  if (problem !== undefined || !Array.isArray(items) || template.kind !== 'task') {
    // Failed like a task would: its handle, the rest of the chain and onError callbacks all see it.
    const name = template.kind === 'task' ? template.task : template.kind
    const message = problem ?? 'the mapped node must be a task'
    const error = serializeError(
      new ValidationError(`map over task "${name}": ${message}`, [{ path: [], message }]),
    )
    return d.fail(error, { taskId: node.id, task: MAP_TASK }, settled, lineage, out)
  }
  const spread = node.spread
  const members = items.map((element, i) => {
    const value = spread
      ? Object.fromEntries(spread.map((field, k) => [field, (element as unknown[])[k]]))
      : element
    return bindMember(template, value, `${node.id}.${i}`)
  })
  const group: WireNode = { kind: 'group', id: `${node.id}.g`, members }
  return d.plan(group, { has: false }, settled, lineage, out)
}

/** What a `result` frame stores: the value going on (joined one level when `flatten`). */
export function resultValue(frame: Extract<WireFrame, { t: 'result' }>, value: unknown): unknown {
  if (!frame.flatten || !Array.isArray(value)) return value
  return value.flat(1)
}

/** Store the outcome reaching a `result` frame under its id (nothing without a backend). */
export async function storeResult(
  backend: ResultBackend | undefined,
  frame: Extract<WireFrame, { t: 'result' }>,
  outcome:
    | { readonly ok: true; readonly value: unknown }
    | { readonly ok: false; readonly error: SerializedError },
  ttlMs: number,
): Promise<void> {
  if (!backend) return
  const base = { id: frame.id, finishedAt: Date.now(), ...(frame.task !== undefined && { task: frame.task }) }
  await backend.setState(
    outcome.ok
      ? { ...base, state: 'SUCCESS', result: outcome.value }
      : { ...base, state: 'FAILURE', error: outcome.error },
    { ttlMs },
  )
}
