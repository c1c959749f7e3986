import { randomUUID } from 'node:crypto'

/** A fresh task id (UUID v4). */
export function newId(): string {
  return randomUUID()
}
