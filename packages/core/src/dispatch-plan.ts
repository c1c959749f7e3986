import { type KindCases, matchKind, type NodeOf, type TaskNode } from './canvas-fold.js'
import { linkFrames, MAP_TASK, mergeInput } from './dispatcher-frames.js'
import { ENVELOPE_VERSION, type Envelope, type WireFrame, type WireNode } from './envelope.js'
import { NotSupportedError, type SerializedError, serializeError, ValidationError } from './errors.js'
import type { AnyTask } from './task.js'

// Planning: which envelopes start a node, on top of a continuation stack. No I/O: a node that
// settles as it is planned (an empty chain or group, a map whose input is not an array) is handed
// to the `Settler`, the continuation walks, which own the backend.

/** The previous step's output, when there is one. */
export type Upstream = { readonly has: false } | { readonly has: true; readonly value: unknown }

/** No previous step: what a send starts. */
export const NO_INPUT: Upstream = { has: false }

/** Lineage and headers carried from a task to the ones it starts. */
export interface Lineage {
  readonly root?: string | undefined
  readonly parent?: string | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
}

/** Where planning hands a node that settles at once: the success and failure walks of a stack. */
export interface Settler {
  advance(value: unknown, stack: readonly WireFrame[], lineage: Lineage, out: Envelope[]): Promise<void>
  fail(
    error: SerializedError,
    failed: { taskId: string; task: string },
    stack: readonly WireFrame[],
    lineage: Lineage,
    out: Envelope[],
  ): Promise<void>
}

/** One `plan` call's arguments, passed through the per-kind handlers. */
interface Step {
  readonly planner: Planner
  readonly upstream: Upstream
  readonly stack: readonly WireFrame[]
  readonly lineage: Lineage
  readonly out: Envelope[]
}

const PLAN: KindCases<WireNode, Step, Promise<void> | undefined> = {
  task: (node, s) => {
    s.out.push(s.planner.envelopeFor(node, s.upstream, s.stack, s.lineage))
    return undefined
  },
  chain: (node, s) => {
    const [first, ...rest] = node.steps
    if (first === undefined)
      return s.planner.settler.advance(
        s.upstream.has ? s.upstream.value : undefined,
        s.stack,
        s.lineage,
        s.out,
      )
    const frames = rest.reverse().map((n): WireFrame => ({ t: 'next', node: n }))
    return s.planner.plan(first, s.upstream, [...s.stack, ...frames], s.lineage, s.out)
  },
  group: (node, s) =>
    s.planner.planGroup(node.id, node.members, false, s.upstream, s.stack, s.lineage, s.out),
  chord: (node, s) =>
    s.planner.planGroup(
      node.id,
      node.header,
      node.tolerant === true,
      s.upstream,
      [...s.stack, { t: 'next', node: node.body }],
      s.lineage,
      s.out,
    ),
  map: (node, s) => planMap(s.planner, node, s.upstream, s.stack, s.lineage, s.out),
}

/**
 * Turns canvas nodes into the envelopes of what runs first; what runs later travels inside them
 * as their continuation stack.
 */
export class Planner {
  constructor(
    private readonly tasks: ReadonlyMap<string, AnyTask>,
    private readonly defaultQueue: string,
    /** Groups and chords are refused without a backend (their counters live there). */
    private readonly hasBackend: boolean,
    /** Where nodes that settle as they are planned go. */
    readonly settler: Settler,
  ) {}

  /** The queue a task node goes to: its own option, else its task's, else the app's default. */
  readonly queueOf = (node: TaskNode): string =>
    node.options?.queue ?? this.tasks.get(node.task)?.queue ?? this.defaultQueue

  /** Add to `out` the envelopes that start `node`, on top of `stack`. */
  async plan(
    node: WireNode,
    upstream: Upstream,
    stack: readonly WireFrame[],
    lineage: Lineage,
    out: Envelope[],
  ): Promise<void> {
    await matchKind(node, PLAN, { planner: this, upstream, stack: linkFrames(node, stack), lineage, out })
  }

  /** @internal The members of a group or a chord's header, each with its `join` frame. */
  async planGroup(
    id: string,
    members: readonly WireNode[],
    tolerant: boolean,
    upstream: Upstream,
    stack: readonly WireFrame[],
    lineage: Lineage,
    out: Envelope[],
  ): Promise<void> {
    if (members.length === 0) return this.settler.advance([], stack, lineage, out)
    if (!this.hasBackend)
      throw new NotSupportedError('groups and chords need a result backend: pass `backend` to createApp()')
    const size = members.length
    for (let index = 0; index < size; index++) {
      const join: WireFrame = tolerant
        ? { t: 'join', group: id, index, size, tolerant }
        : { t: 'join', group: id, index, size }
      await this.plan(members[index] as WireNode, upstream, [...stack, join], lineage, out)
    }
  }

  /** The envelope of a task node, with its input and defaults resolved. */
  envelopeFor(node: TaskNode, upstream: Upstream, stack: readonly WireFrame[], lineage: Lineage): Envelope {
    // An `immutable` node is bound even when its input is undefined (absent from the JSON).
    // A partial signature (`merge`) has input but is not bound: the previous output completes it.
    const bound = node.merge === undefined && (node.immutable === true || Object.hasOwn(node, 'input'))
    if (!bound && !upstream.has) {
      throw new TypeError(
        `signature of task "${node.task}" has no input: use .s(input) or put it after another step`,
      )
    }
    const def = this.tasks.get(node.task)
    const opts = node.options
    const now = Date.now()
    const env: Envelope = {
      v: ENVELOPE_VERSION,
      id: node.id,
      task: node.task,
      input: bound
        ? node.input
        : node.merge
          ? mergeInput(node, (upstream as { value: unknown }).value)
          : (upstream as { value: unknown }).value,
      queue: this.queueOf(node),
      attempt: 1,
      createdAt: now,
    }
    const priority = opts?.priority ?? def?.priority
    if (priority !== undefined) env.priority = priority
    const countdown = opts?.countdownMs
    if (countdown !== undefined && countdown > 0) env.eta = now + countdown
    const timeoutMs = opts?.timeoutMs
    if (timeoutMs !== undefined) env.timeoutMs = timeoutMs
    if (lineage.headers && Object.keys(lineage.headers).length > 0) env.headers = { ...lineage.headers }
    env.root = lineage.root ?? node.id
    if (lineage.parent !== undefined) env.parent = lineage.parent
    if (stack.length > 0) env.stack = [...stack]
    return env
  }
}

/** A copy of task node `template` bound to `value` (a map member), with id `id`. */
function bindMember(template: TaskNode, value: unknown, id: string): WireNode {
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
function mapProblem(node: NodeOf<'map'>, items: unknown): string | undefined {
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
function planMap(
  planner: Planner,
  node: NodeOf<'map'>,
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
    return planner.settler.fail(error, { taskId: node.id, task: MAP_TASK }, settled, lineage, out)
  }
  const spread = node.spread
  const members = items.map((element, i) => {
    const value = spread
      ? Object.fromEntries(spread.map((field, k) => [field, (element as unknown[])[k]]))
      : element
    return bindMember(template, value, `${node.id}.${i}`)
  })
  const group: WireNode = { kind: 'group', id: `${node.id}.g`, members }
  return planner.plan(group, NO_INPUT, settled, lineage, out)
}
