/**
 * Longest queue name accepted, in UTF-16 code units (the envelope allows 200 too). At most 600
 * bytes of UTF-8, far below what a B-tree entry of the fetch index can hold (about 2.7 kB).
 */
export const MAX_QUEUE_NAME = 200

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * What keeps the schema from storing a queue name faithfully, or `undefined`: empty or longer
 * than {@link MAX_QUEUE_NAME}; a NUL (`text` cannot hold one: PostgreSQL would fail the statement
 * with 22021); a lone surrogate (not valid Unicode: encoded to UTF-8 it becomes U+FFFD, so two
 * different names would share one queue). The broker's `queueProblem` (BrokerBase runs it first).
 */
export function queueNameProblem(queue: string): string | undefined {
  const problem =
    queue.length === 0
      ? 'must not be empty'
      : queue.length > MAX_QUEUE_NAME
        ? `is ${queue.length} characters long, over ${MAX_QUEUE_NAME}`
        : queue.includes('\u0000')
          ? 'contains a NUL character, which PostgreSQL text cannot hold'
          : LONE_SURROGATE.test(queue)
            ? 'contains a lone surrogate (not valid Unicode)'
            : undefined
  if (problem === undefined) return undefined
  return `queue ${JSON.stringify(queue.slice(0, 60))}${queue.length > 60 ? '…' : ''} ${problem}`
}

/**
 * Dead-letter ids (checked strings, see BrokerBase) are decimal here; anything else matches
 * nothing. Undefined means "all".
 */
export function idArray(ids: readonly string[] | undefined): string[] | null {
  if (ids === undefined) return null
  return ids.filter((id) => /^[0-9]{1,18}$/.test(id))
}

/**
 * A Postgres array literal of plain numbers (ids are decimal strings from the database):
 * cheaper than letting `pg` escape each element, and safe because nothing but digits goes in.
 */
export function arrayLiteral<T>(items: readonly T[], pick: (item: T) => string | number): string {
  let out = '{'
  for (let i = 0; i < items.length; i++) out += (i === 0 ? '' : ',') + pick(items[i]!)
  return `${out}}`
}
