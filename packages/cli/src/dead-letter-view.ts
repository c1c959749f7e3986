import { type DeadLetter, decodeEnvelope } from '@errand/core'

/** A dead letter as an operator reads it: the envelope decoded where it can be. */
export interface DeadLetterView {
  readonly id: string
  readonly queue: string
  readonly reason: string
  readonly deadAt: string
  /** Task name and id from the envelope; undefined when the bytes are not an envelope. */
  readonly task: string | undefined
  readonly taskId: string | undefined
  readonly attempt: number | undefined
  readonly error:
    | { name: string; message: string; code?: string | undefined; stack?: string | undefined }
    | undefined
  /** The decoded envelope, or the bytes as text (UTF-8) or base64 when they are not one. */
  readonly payload: unknown
}

/** Decode what can be decoded; garbage stays visible as text or base64, never an exception. */
export function viewDeadLetter(dead: DeadLetter): DeadLetterView {
  let envelope: ReturnType<typeof decodeEnvelope> | undefined
  try {
    envelope = decodeEnvelope(dead.body)
  } catch {
    envelope = undefined
  }
  const text = Buffer.from(dead.body).toString('utf8')
  const isText = Buffer.from(text, 'utf8').equals(Buffer.from(dead.body))
  return {
    id: dead.id,
    queue: dead.queue,
    reason: dead.reason,
    deadAt: new Date(dead.deadAt).toISOString(),
    task: envelope?.task,
    taskId: envelope?.id,
    attempt: envelope?.attempt,
    error: dead.error && {
      name: dead.error.name,
      message: dead.error.message,
      code: dead.error.code,
      stack: dead.error.stack,
    },
    payload: envelope ?? (isText ? { text } : { base64: Buffer.from(dead.body).toString('base64') }),
  }
}
