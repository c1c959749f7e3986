import type { z } from 'zod'
import { InvalidOptionError } from '../errors.js'
import { maskCredentials } from '../redact.js'

/**
 * Validate an adapter's constructor options with its zod schema, the one way every adapter does:
 * `input` must be an object (else `ERR_INVALID_OPTION` naming `options`); the schema's first
 * issue becomes `ERR_INVALID_OPTION` naming the option's path (`reconnect.maxDelayMs`), an
 * unknown key of a strict schema names that key ("unknown option"). Messages are
 * credential-masked, so a URL's password never reaches an error. Returns the schema's output
 * (defaults filled).
 *
 * @example
 * ```ts
 * const options = parseOptions(myOptionsSchema, input, 'my')
 * ```
 */
export function parseOptions<S extends z.ZodType>(schema: S, input: unknown, adapter: string): z.output<S> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new InvalidOptionError('options', 'expected an options object', { adapter })
  }
  const parsed = schema.safeParse(input)
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]
  if (issue?.code === 'unrecognized_keys') {
    throw new InvalidOptionError(String(issue.keys[0] ?? 'options'), 'unknown option', { adapter })
  }
  const option = issue !== undefined && issue.path.length > 0 ? issue.path.map(String).join('.') : 'options'
  throw new InvalidOptionError(option, maskCredentials(issue?.message ?? 'invalid'), { adapter })
}
