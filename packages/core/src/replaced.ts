import type { AnyCanvas } from './canvas.js'

/**
 * What `ctx.replace(canvas)` returns and a handler returns in turn: the task hands its place to
 * `canvas`. `T` is the canvas's output, which becomes the task's result. Made only by
 * `ctx.replace`; the worker recognises it by class.
 */
export class Replaced<T> {
  /** Compile-time only: the output the replacement gives. */
  declare readonly __output?: T
  /** The canvas that takes the task's place. */
  readonly canvas: AnyCanvas

  /** @internal Use `ctx.replace(canvas)`. */
  constructor(canvas: AnyCanvas) {
    this.canvas = canvas
  }
}
