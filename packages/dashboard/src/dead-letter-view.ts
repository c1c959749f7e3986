import { type DeadLetter, decodeEnvelope } from '@errand/core'

// The same reading of a dead letter as `errand dlq show` (packages/cli/src/dead-letter-view.ts),
// copied rather than imported: the CLI depends on this package for `errand dashboard`.

/** A dead letter as an operator reads it: the envelope decoded where it can be. */
export interface DeadLetterView {
  readonly id: string
  readonly reason: string
  readonly deadAt: string
  /** Task name and id from the envelope; undefined when the bytes are not an envelope. */
  readonly task: string | undefined
  readonly taskId: string | undefined
  readonly attempt: number | undefined
  readonly error: { name: string; message: string; code?: string; stack?: string } | undefined
  /** The decoded envelope, or the bytes as text (UTF-8) or base64 when they are not one. */
  readonly payload: unknown
  /** How the payload was read, for the page's label. */
  readonly payloadKind: 'envelope' | 'text' | 'base64'
}

/** Decode what can be decoded; garbage stays visible as text or base64, never an exception. */
export function viewDeadLetter(dead: DeadLetter): DeadLetterView {
  let envelope: ReturnType<typeof decodeEnvelope> | undefined
  try {
    envelope = decodeEnvelope(dead.body)
  } catch {
    envelope = undefined
  }
  const bytes = Buffer.from(dead.body)
  const text = bytes.toString('utf8')
  const isText = Buffer.from(text, 'utf8').equals(bytes)
  const payloadKind = envelope ? 'envelope' : isText ? 'text' : 'base64'
  return {
    id: dead.id,
    reason: dead.reason,
    deadAt: new Date(dead.deadAt).toISOString(),
    task: envelope?.task,
    taskId: envelope?.id,
    attempt: envelope?.attempt,
    error: dead.error && {
      name: dead.error.name,
      message: dead.error.message,
      ...(dead.error.code !== undefined && { code: dead.error.code }),
      ...(dead.error.stack !== undefined && { stack: dead.error.stack }),
    },
    payload: envelope ?? (isText ? text : bytes.toString('base64')),
    payloadKind,
  }
}
