import { randomBytes } from 'node:crypto'
import type { Logger } from '@errand/core'
import pg from 'pg'

/** The test database (trust auth on the project's machines). */
export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

/** A fresh schema name for one test file; drop it with {@link dropSchema}. */
export function uniqueSchema(tag = 't'): string {
  return `errand_${tag}_${randomBytes(4).toString('hex')}`
}

/** A URL naming `schema`. */
export function schemaUrl(schema: string): string {
  const url = new URL(DATABASE_URL)
  url.searchParams.set('schema', schema)
  return url.toString()
}

/** Runs one statement on a short-lived connection. */
export async function sql<R = Record<string, unknown>>(text: string, values: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: DATABASE_URL })
  await client.connect()
  try {
    return (await client.query(text, values)).rows as R[]
  } finally {
    await client.end()
  }
}

/** Drops a schema this test file created (never anything else). */
export async function dropSchema(schema: string): Promise<void> {
  if (!/^errand_[a-z0-9_]+$/.test(schema)) throw new Error(`refusing to drop ${schema}`)
  await sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
}

let counter = 0
/** A queue name unique in this process. */
export function uniqueQueue(tag = 'q'): string {
  counter++
  return `${tag}-${process.pid}-${counter}-${randomBytes(3).toString('hex')}`
}

/** Encodes a string as message bytes. */
export const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)
/** Decodes message bytes. */
export const text = (body: Uint8Array): string => new TextDecoder().decode(body)

/** Resolves when `predicate` holds, polling every 5 ms; rejects after `timeoutMs`. */
export async function until(predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await predicate())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** A core Logger that keeps warnings and errors for assertions instead of printing them. */
export function collectingLogger(): Logger & { readonly lines: string[] } {
  const lines: string[] = []
  const keep = (message: string): void => void lines.push(message)
  return { debug: () => undefined, info: () => undefined, warn: keep, error: keep, lines }
}
