import { type AnyCanvas, Canvas } from './canvas.js'
import { InvalidOptionError, ValidationError } from './errors.js'

/** A short description of a wrong argument, for messages: never its contents (they may be secret). */
export function describeArgument(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'object' || typeof value === 'function') {
    const v = value as { s?: unknown; name?: unknown }
    if (typeof v.s === 'function' && typeof v.name === 'string') {
      return `the task "${v.name}" itself (make a signature with .s(input))`
    }
    return typeof value === 'function' ? 'a function' : 'an object that is not a canvas'
  }
  return `${typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`}`
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

/** Throws `ERR_INVALID_OPTION` unless `options` is undefined or an object with only `known` keys. */
export function requireOptions(builder: string, options: unknown, known: readonly string[]): void {
  if (options === undefined) return
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidOptionError(
      'options',
      `${builder}: options must be an object, got ${describeArgument(options)}`,
    )
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new InvalidOptionError(key, `${builder}: unknown option (known: ${known.join(', ')})`)
    }
  }
}
