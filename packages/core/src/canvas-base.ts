import { describeArgument } from './canvas-checks.js'
import type { WireNode } from './envelope.js'
import { type SerializedError, ValidationError } from './errors.js'

// The base every canvas kind extends, and the checks that need only it. Apart from canvas.ts so
// that what the kinds share imports none of them (canvas-map.ts and the builders import this).

/** Input of an `onError` callback. */
export interface ErrorCallbackInput {
  /** Id of the task that failed. */
  readonly taskId: string
  readonly task: string
  readonly error: SerializedError
}

/** The outcome of one chord member when the chord tolerates failures. */
export type Outcome<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: SerializedError }

declare const phantom: unique symbol

/**
 * Anything that can be sent: a task signature, a chain, a group or a chord.
 *
 * Type parameters are compile-time only:
 * - `Need`: what it accepts from the previous step of a chain (`unknown`: it ignores it;
 *   `never`: it takes no previous step, i.e. it has bound input and may only come first);
 * - `Out`: what it produces;
 * - `Ready`: true when it can be sent as it is (its input is bound).
 */
export abstract class Canvas<Need, Out, Ready extends boolean> {
  declare readonly [phantom]?: { need: (n: Need) => void; out: Out; ready: Ready }
  /** @internal Error callbacks attached with {@link Canvas.onError}. */
  readonly errbacks: readonly Canvas<never, unknown, boolean>[]
  /** @internal Success callbacks attached with {@link Canvas.onSuccess}. */
  readonly successes: readonly Canvas<never, unknown, boolean>[] = []

  protected constructor(errbacks: readonly Canvas<never, unknown, boolean>[]) {
    this.errbacks = errbacks
  }

  /**
   * Also send `callback` with this canvas's output when it succeeds (a success link, Celery's
   * `link`). Unlike a chain step it starts a separate workflow: this canvas's handle still gives
   * its own output, and a failing callback does not fail it. Several callbacks all run.
   *
   * @example
   * ```ts
   * await app.send(resize.s({ url }).onSuccess(notify.s()))
   * ```
   */
  onSuccess(callback: Canvas<Out, unknown, boolean>): this {
    requireCanvas('onSuccess', 'the callback', callback)
    return this.withSuccesses(this, [...this.successes, callback as AnyCanvas])
  }

  /** @internal `copy` (a new canvas made from this one) with `successes`; `this` is not changed. */
  protected withSuccesses<C extends Canvas<never, unknown, boolean>>(
    copy: C,
    successes: readonly AnyCanvas[] = this.successes,
  ): C {
    if (successes.length === 0) return copy
    // Canvases are immutable values: copy the object (its class kept) rather than add a
    // constructor parameter to every kind of canvas.
    const out = Object.create(Object.getPrototypeOf(copy)) as C
    Object.assign(out, copy, { successes })
    return out
  }

  /**
   * Send `callback` with `{ taskId, task, error }` when any task of this canvas fails for good.
   * Each callback fires once per failure that stops the canvas.
   */
  abstract onError(callback: Canvas<ErrorCallbackInput, unknown, boolean>): Canvas<Need, Out, Ready>

  /** @internal Serialise with fresh ids. */
  abstract toWire(ids: () => string): WireNode
}

/** Any canvas at all (the top type). */
export type AnyCanvas = Canvas<never, unknown, boolean>
/** What a canvas produces. */
export type OutputOf<C> = C extends Canvas<never, infer O, boolean> ? O : never
/** What a canvas accepts from a previous chain step. */
export type NeedOf<C> = C extends Canvas<infer N, unknown, boolean> ? N : never
/** Whether a canvas can be sent as it is. */
export type ReadyOf<C> = C extends Canvas<never, unknown, infer R> ? R : never

/** @internal A node with the wire form of `canvas`'s error and success callbacks. */
export function nodeWithErrbacks(node: WireNode, canvas: AnyCanvas, ids: () => string): WireNode {
  if (canvas.errbacks.length !== 0) node.onError = canvas.errbacks.map((e) => e.toWire(ids))
  if (canvas.successes.length !== 0) node.onSuccess = canvas.successes.map((e) => e.toWire(ids))
  return node
}

/**
 * Run-time checks of what the canvas builders get, for JavaScript callers and casts: TypeScript
 * already refuses these, but without a check `group([a, b])` fails far away ("canvas.errbacks is
 * not iterable"). Each names the builder and the position: `group: member 2 is not a signature…`.
 */
export function requireCanvases(builder: string, what: string, items: readonly unknown[]): AnyCanvas[] {
  if (items.length === 1 && Array.isArray(items[0])) {
    throw new ValidationError(
      `${builder}: takes its ${what}s as arguments, not an array: write ${builder}(...${what}s)`,
      [{ path: [0], message: 'an array' }],
    )
  }
  items.forEach((item, i) => {
    requireCanvas(builder, `${what} ${i}`, item, [i])
  })
  return items as AnyCanvas[]
}

/** Throws `ERR_VALIDATION` unless `value` is a canvas (a signature, chain, group or chord). */
export function requireCanvas(
  builder: string,
  what: string,
  value: unknown,
  path: readonly (string | number)[] = [],
): asserts value is AnyCanvas {
  if (value instanceof Canvas) return
  throw new ValidationError(
    `${builder}: ${what} is not a signature or canvas (task.s(input), chain(), group(), chord()): got ${describeArgument(value)}`,
    [{ path, message: 'not a canvas' }],
  )
}
