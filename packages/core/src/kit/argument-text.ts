/**
 * A wrong argument, shown in an error without echoing it whole: a key may be long, and a value
 * may be a payload the caller would not want in a log.
 */
export function describeArgument(value: unknown): string {
  if (typeof value === 'string') return `a string of ${value.length} characters`
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value)
  if (Array.isArray(value)) return 'an array'
  const type = typeof value
  return `${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type}`
}

/** The `TypeError` of a wrong argument: `<method>: <what> must be <rule>, got <value>`. */
export function argumentError(method: string, what: string, rule: string, value: unknown): TypeError {
  return new TypeError(`${method}: ${what} must be ${rule}, got ${describeArgument(value)}`)
}

/**
 * A duration in ms: finite and > 0, rounded up (stores keep whole ms). No upper bound here: a
 * store whose clock arithmetic has one cuts or refuses longer ones itself.
 */
export function checkMs(method: string, what: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw argumentError(method, what, 'a finite number of ms > 0', value)
  }
  return Math.ceil(value)
}

/** A count: a safe integer >= 1. */
export function checkCount(method: string, what: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw argumentError(method, what, 'an integer >= 1', value)
  }
}

/** A non-empty string of at most `max` characters (two messages: the length one says the limit). */
export function checkName(method: string, what: string, value: unknown, max: number): void {
  if (typeof value !== 'string' || value.length === 0) {
    throw argumentError(method, what, 'a non-empty string', value)
  }
  if (value.length > max) throw argumentError(method, what, `at most ${max} characters`, value)
}
