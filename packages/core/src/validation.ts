import type { z } from 'zod'
import { InvalidOptionError, ValidationError, type ValidationIssue } from './errors.js'

/**
 * Parse `value` with `schema`; on failure throw {@link ValidationError} whose message names the
 * path of every bad field (`input.items[2].width: expected number`).
 */
export function parseOrThrow<S extends z.ZodType>(
  schema: S,
  value: unknown,
  what: string,
  root = 'input',
): z.output<S> {
  const result = schema.safeParse(value)
  if (result.success) return result.data
  const issues: ValidationIssue[] = result.error.issues.map((i) => ({
    path: i.path.filter((p): p is string | number => typeof p !== 'symbol'),
    message: i.message,
  }))
  const detail = issues.map((i) => `${formatPath(root, i.path)}: ${i.message}`).join('; ')
  throw new ValidationError(`invalid ${what}: ${detail}`, issues)
}

/** `root` followed by `path` as a reader writes it: `input.items[2].width`. */
export function formatPath(root: string, path: readonly (string | number)[]): string {
  let out = root
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `.${p}`
  return out
}

/**
 * Parse options with `schema`; on failure throw {@link InvalidOptionError} naming the first bad
 * option by its path (`worker.concurrency`), with every problem in the message.
 */
export function parseOptions<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value ?? {})
  if (result.success) return result.data
  const first = result.error.issues[0]
  const path = (first?.path ?? []).filter((p): p is string | number => typeof p !== 'symbol')
  const option = [what, ...path.map(String)].filter(Boolean).join('.')
  const detail = result.error.issues
    .map((i) => {
      const keys = (i as { keys?: string[] }).keys
      const where = [what, ...i.path.map(String)].filter(Boolean).join('.')
      return keys
        ? `unknown option${keys.length > 1 ? 's' : ''} ${keys.map((k) => `"${where ? `${where}.` : ''}${k}"`).join(', ')}`
        : `${where}: ${i.message}`
    })
    .join('; ')
  const unknownKeys = (first as { keys?: string[] } | undefined)?.keys
  throw new InvalidOptionError(
    unknownKeys?.[0] ? [option, unknownKeys[0]].filter(Boolean).join('.') : option || what,
    detail,
  )
}
