import { InvalidOptionError } from './errors.js'

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
