import { type InputValidator, type PartialMerge, Signature } from './canvas.js'
import { describeArgument } from './canvas-checks.js'
import { ValidationError } from './errors.js'
import { formatPath, parseOrThrow } from './validation.js'
import { checkWireValue } from './wire-check.js'

export type { PartialStepMismatch } from './canvas.js'

/** `T` written out field by field, so the compiler shows `{ b: number }` rather than `Omit<…>`. */
type Simplify<T> = { [K in keyof T]: T[K] } & {}

/** The fields of `In` a partial signature binding `Bound` leaves open. */
export type OpenFields<In, Bound> = Simplify<Omit<In, keyof Bound>>

/**
 * A partial signature (`task.partial(bound)` / `task.partial(bound, into)`): a task with some
 * input fields bound, whose other fields the previous chain step fills. `Need` is what it takes
 * from that step.
 */
export type PartialSignature<Need, Out> = Signature<Need, Out, false> & { readonly merge: PartialMerge }

/** Shown by the compiler where `partial()` is called on a task whose input is not an object. */
export interface PartialNeedsObjectInput<In> {
  readonly 'error: partial() needs a task whose input is an object': { input: In }
}

/** Shown by the compiler for a bound field the task's input does not have. */
export type NotAnInputField = { readonly 'error: not a field of the task input': never }

/** The bound-fields parameter of `partial()`: `Bound`, no fields the input lacks, object inputs only. */
export type PartialBound<In, Bound> =
  In extends Record<string, unknown>
    ? Bound & Partial<In> & { readonly [K in Exclude<keyof Bound, keyof In>]: NotAnInputField }
    : PartialNeedsObjectInput<In>

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/** @internal The signature `task.partial(bound, into)` returns, after run-time checks. */
export function makePartial(
  task: string,
  validator: InputValidator,
  bound: unknown,
  into: unknown,
): Signature<never, unknown, false> {
  if (!isPlainObject(bound)) {
    throw new ValidationError(
      `partial: the bound fields of task "${task}" must be a plain object, got ${describeArgument(bound)}`,
      [{ path: ['input'], message: 'not an object' }],
    )
  }
  if (into !== undefined) {
    if (typeof into !== 'string' || into.length === 0 || into.length > 200 || into === '__proto__') {
      throw new ValidationError(
        `partial: the field for the previous output of task "${task}" must be a field name, got ${describeArgument(into)}`,
        [{ path: ['into'], message: 'not a field name' }],
      )
    }
    if (Object.hasOwn(bound, into)) {
      throw new ValidationError(
        `partial: task "${task}" binds field "${into}" and also asks for the previous output in it: bind one or the other`,
        [{ path: ['input', into], message: 'bound and filled' }],
      )
    }
  }
  const merge: PartialMerge = into === undefined ? {} : { into: into as string }
  return new Signature(task, false, bound, false, {}, [], validator, merge)
}

/**
 * Send-time check of a partial signature's bound fields: each must pass the task's schema for
 * that field (the open fields are checked by the worker, on the merged input: `invalid-input`)
 * and travel as JSON.
 */
export function checkPartialInput(sig: Signature<never, unknown, boolean>, validator: unknown): void {
  const schema = (validator as { inputSchema?: { partial?: unknown } } | undefined)?.inputSchema
  if (schema && typeof schema.partial === 'function') {
    // A zod object's `.partial()`: every field optional, the bound ones checked as the task would.
    const partial = (schema.partial as () => Parameters<typeof parseOrThrow>[0]).call(schema)
    parseOrThrow(partial, sig.input, `bound fields of task "${sig.task}"`)
  }
  const wire = checkWireValue(sig.input)
  if (!wire.ok) {
    throw new ValidationError(
      `invalid input of task "${sig.task}": ${formatPath('input', wire.issue.path)}: ${wire.issue.message}`,
      [wire.issue],
    )
  }
}
