import { type AnyCanvas, Canvas, type ErrorCallbackInput, nodeWithErrbacks, Signature } from './canvas.js'
import { requireCanvas } from './canvas-base.js'
import { describeArgument } from './canvas-checks.js'
import type { WireNode } from './envelope.js'
import { ValidationError } from './errors.js'
import { Task } from './task.js'

/**
 * One task applied to each element of an array, as a group made at run time when the array is
 * known (the previous step's output, or bound items for {@link chunks}). Made by {@link map},
 * {@link starmap} and {@link chunks}. Its output is the members' outputs in element order.
 */
export class MapCanvas<Need, Out, Ready extends boolean> extends Canvas<Need, Out, Ready> {
  readonly kind = 'map' as const
  /** The signature each element is given to (open: `task.s()` or a partial signature). */
  readonly template: Signature<never, unknown, boolean>
  /** Bound elements (chunks); undefined: the previous step's output. */
  readonly items: readonly unknown[] | undefined
  /** `starmap`: the fields a tuple element fills, in order. */
  readonly spread: readonly string[] | undefined
  /** Join the members' arrays into one (chunks). */
  readonly flatten: boolean

  /** @internal Use {@link map}, {@link starmap} or {@link chunks}. */
  constructor(
    template: Signature<never, unknown, boolean>,
    items: readonly unknown[] | undefined,
    spread: readonly string[] | undefined,
    flatten: boolean,
    errbacks: readonly AnyCanvas[] = [],
  ) {
    super(errbacks)
    this.template = template
    this.items = items
    this.spread = spread
    this.flatten = flatten
  }

  onError(callback: Canvas<ErrorCallbackInput, unknown, boolean>): MapCanvas<Need, Out, Ready> {
    requireCanvas('onError', 'the callback', callback)
    return this.withSuccesses(
      new MapCanvas(this.template, this.items, this.spread, this.flatten, [
        ...this.errbacks,
        callback as AnyCanvas,
      ]),
    )
  }

  toWire(ids: () => string): WireNode {
    const node: WireNode = { kind: 'map', id: ids(), node: this.template.toWire(ids) }
    if (this.items !== undefined) node.items = [...this.items]
    if (this.spread !== undefined) node.spread = [...this.spread]
    if (this.flatten) node.flatten = true
    return nodeWithErrbacks(node, this, ids)
  }
}

/** What {@link map} accepts: a task, or an open signature (`task.s()`, `task.partial(…)`). */
export type Mappable = Task<never, unknown> | Signature<never, unknown, false>
/** The element type a {@link map} over `T` takes. */
export type MapElementOf<T> =
  T extends Task<infer In, unknown> ? In : T extends Signature<infer N, unknown, false> ? N : never
/** The output of one member of a {@link map} over `T`. */
export type MapOutputOf<T> =
  T extends Task<never, infer O> ? O : T extends Signature<never, infer O, boolean> ? O : never

function templateOf(builder: string, target: unknown): Signature<never, unknown, boolean> {
  if (target instanceof Task) return target.s() as Signature<never, unknown, boolean>
  if (target instanceof Signature && !target.bound && !target.immutable) {
    return target as Signature<never, unknown, boolean>
  }
  throw new ValidationError(
    `${builder}: expected a task or an open signature (task.s(), task.partial(…)), got ${
      target instanceof Signature ? 'a signature with bound input' : describeArgument(target)
    }`,
    [{ path: [0], message: 'not a task or open signature' }],
  )
}

/**
 * Apply one task to each element of the previous step's array output: a group of one task per
 * element, made when that array is known; the output is their outputs in element order (`[]` for
 * an empty array). An open partial signature works too: each element fills what it leaves open.
 * A previous output that is not an array fails the map with `ERR_VALIDATION`. Needs a result
 * backend. Celery's `map` / `xmap`.
 *
 * @example
 * ```ts
 * const pages = await app.send(chain(listUrls.s({ site }), map(fetchPage)))
 * ```
 */
export function map<T extends Mappable>(
  target: T,
): MapCanvas<readonly MapElementOf<T>[], MapOutputOf<T>[], false> {
  return new MapCanvas(templateOf('map', target), undefined, undefined, false)
}

/** The tuple of `In`'s fields named by `Keys`, in order. */
export type FieldsTuple<In, Keys extends readonly unknown[]> = {
  -readonly [I in keyof Keys]: Keys[I] extends keyof In ? In[Keys[I]] : never
}

/**
 * Like {@link map}, for elements that are tuples of arguments (Celery's `starmap`): element
 * `[x, y]` runs the task with `{ [fields[0]]: x, [fields[1]]: y }`. An element that is not an
 * array fails the map with `ERR_VALIDATION`.
 *
 * @example
 * ```ts
 * chain(pairs.s(10), starmap(add, ['a', 'b'])) // [[1, 2], [3, 4]] → [add({a:1,b:2}), add({a:3,b:4})]
 * ```
 */
export function starmap<In, Out, const K extends readonly (keyof In & string)[]>(
  task: Task<In, Out>,
  fields: K,
): MapCanvas<readonly FieldsTuple<In, K>[], Out[], false> {
  if (
    !Array.isArray(fields) ||
    fields.length === 0 ||
    fields.some((f) => typeof f !== 'string' || f === '')
  ) {
    throw new ValidationError('starmap: fields must be a non-empty array of field names', [
      { path: [1], message: 'not a list of field names' },
    ])
  }
  return new MapCanvas(templateOf('starmap', task), undefined, [...fields], false)
}
