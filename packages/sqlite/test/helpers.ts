import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A fresh directory under the OS temp dir; `remove()` deletes it. */
export function tempDir(tag: string): { readonly dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), `errand-sqlite-${tag}-`))
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** A `sqlite:///…` URL for a new file in `dir`. */
export function fileUrl(dir: string, name = `${randomBytes(4).toString('hex')}.db`): string {
  return `sqlite://${join(dir, name)}`
}

/** A queue name unique to this run. */
export function uniqueQueue(tag = 'q'): string {
  return `${tag}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()
export const bytes = (text: string): Uint8Array => encoder.encode(text)
export const text = (b: Uint8Array): string => decoder.decode(b)

/** Resolves once `check` is true, polling every 10 ms; rejects after `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 10))
  }
}
