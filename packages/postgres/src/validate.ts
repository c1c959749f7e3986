/** Longest queue name accepted (the envelope allows 200 characters too). */
export const MAX_QUEUE_NAME = 200

/** A programming mistake in a queue name is a TypeError. */
export function checkQueue(queue: string): void {
  if (typeof queue !== 'string' || queue.length === 0 || queue.length > MAX_QUEUE_NAME) {
    throw new TypeError(`queue must be a non-empty string of at most ${MAX_QUEUE_NAME} characters`)
  }
}

/** Dead-letter ids are decimal; anything else matches nothing. Undefined means "all". */
export function idArray(ids: readonly string[] | undefined): string[] | null {
  if (ids === undefined) return null
  if (!Array.isArray(ids)) throw new TypeError('ids must be an array of strings')
  return ids.filter((id) => typeof id === 'string' && /^[0-9]{1,18}$/.test(id))
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
