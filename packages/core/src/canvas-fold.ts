import type { AnyCanvas, Chain, Chord, Group, Signature } from './canvas.js'
import type { MapCanvas } from './canvas-map.js'
import type { WireNode } from './envelope.js'

// The one place that knows which kinds of canvas there are and what each holds. Every walk over a
// canvas (its wire form in planning, send options, handles to mark failed; the canvas objects in
// send's checks) goes through `matchKind` or `foldNode` here, so a new kind is added to
// `WireNode` (envelope.ts), its class, and the handler objects the compiler then asks for.

/** The kinds of canvas: `task` (a signature), `chain`, `group`, `chord`, `map`. */
export type CanvasKind = WireNode['kind']

/** The wire node of kind `K`. */
export type NodeOf<K extends CanvasKind> = Extract<WireNode, { kind: K }>

/** A wire task node (a signature on the wire). */
export type TaskNode = NodeOf<'task'>

/** The canvas objects of every kind: what `matchCanvas` tells apart. */
export type KnownCanvas =
  | Signature<never, unknown, boolean>
  | Chain<never, unknown, boolean>
  | Group<never, unknown, boolean>
  | Chord<never, unknown, boolean>
  | MapCanvas<never, unknown, boolean>

/**
 * One handler per kind, each given the node narrowed to its kind and a context `C` (passed
 * through, so handler objects can be module constants rather than closures made per call).
 * Missing a kind does not compile.
 */
export type KindCases<N extends { readonly kind: CanvasKind }, C, R> = {
  readonly [K in CanvasKind]: (node: Extract<N, { kind: K }>, context: C) => R
}

/** Call the handler of `node`'s kind: the one dispatch on a canvas's kind in core. */
export function matchKind<N extends { readonly kind: CanvasKind }, C, R>(
  node: N,
  cases: KindCases<N, C, R>,
  context: C,
): R {
  // Sound: the handler picked by `node.kind` takes exactly the nodes of that kind.
  return (cases[node.kind] as (node: N, context: C) => R)(node, context)
}

/**
 * {@link matchKind} over canvas objects. Every canvas is one of {@link KnownCanvas}: the base
 * class's constructor is protected and core makes all the kinds.
 */
export function matchCanvas<C, R>(canvas: AnyCanvas, cases: KindCases<KnownCanvas, C, R>, context: C): R {
  return matchKind(canvas as KnownCanvas, cases, context)
}

/** How {@link foldNode} combines a node with the folded values of the nodes inside it. */
export interface NodeFold<R> {
  task(node: TaskNode): R
  chain(node: NodeOf<'chain'>, steps: R[]): R
  group(node: NodeOf<'group'>, members: R[]): R
  chord(node: NodeOf<'chord'>, header: R[], body: R): R
  /** A map's members do not exist until its array is known: it folds as a leaf. */
  map(node: NodeOf<'map'>): R
}

const FOLD: KindCases<WireNode, NodeFold<unknown>, unknown> = {
  task: (node, f) => f.task(node),
  chain: (node, f) =>
    f.chain(
      node,
      node.steps.map((s) => foldNode(s, f)),
    ),
  group: (node, f) =>
    f.group(
      node,
      node.members.map((m) => foldNode(m, f)),
    ),
  chord: (node, f) =>
    f.chord(
      node,
      node.header.map((m) => foldNode(m, f)),
      foldNode(node.body, f),
    ),
  map: (node, f) => f.map(node),
}

/** Fold a wire node bottom-up (callbacks in `onError`/`onSuccess` are not part of the tree). */
export function foldNode<R>(node: WireNode, fold: NodeFold<R>): R {
  return matchKind(node, FOLD, fold as NodeFold<unknown>) as R
}

const TASK_IDS: NodeFold<string[]> = {
  task: (node) => [node.id],
  chain: (_, steps) => steps.flat(),
  group: (_, members) => members.flat(),
  chord: (_, header, body) => [...header.flat(), ...body],
  // Its members do not exist yet; its handle waits on the map's own id.
  map: (node) => [node.id],
}

/** Every task id inside a node, in order. */
export function collectTaskIds(node: WireNode, into: string[]): void {
  into.push(...foldNode(node, TASK_IDS))
}
