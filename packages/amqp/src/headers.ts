import { createHash } from 'node:crypto'
import type { DeadLetterReason, SerializedError } from '@errand/core'
import type { Message, MessagePropertyHeaders } from 'amqplib'

/** Deliveries this message had before it was last re-published by a nack (absent: none). */
export const H_DELIVERIES = 'x-errand-deliveries'
/** Dead letters: why, the error as JSON, when (ms since epoch), from which queue. */
export const H_REASON = 'x-errand-reason'
export const H_ERROR = 'x-errand-error'
export const H_DEAD_AT = 'x-errand-dead-at'
export const H_QUEUE = 'x-errand-queue'

/** Headers RabbitMQ adds or that describe one life of a message; not carried to a copy. */
const TRANSIENT = new Set([
  'x-death',
  'x-first-death-exchange',
  'x-first-death-queue',
  'x-first-death-reason',
  'x-last-death-exchange',
  'x-last-death-queue',
  'x-last-death-reason',
  'x-delivery-count',
  H_DELIVERIES,
  H_REASON,
  H_ERROR,
  H_DEAD_AT,
  H_QUEUE,
])

/** Longest error JSON kept in a dead-letter header: AMQP header tables must fit 64 KiB. */
const MAX_ERROR_JSON = 16 * 1024

/**
 * How many times this message has been delivered, this delivery included: the deliveries
 * counted in our header (each nack or re-count publishes a copy with the count so far), plus one,
 * plus earlier deliveries of this copy that were returned unsettled — counted exactly by quorum
 * queues (`x-delivery-count`); on classic queues, which only flag `redelivered`, the consumer
 * re-counts a returned copy before handing it out (see `needsRecount`).
 */
export function attemptOf(message: Message): number {
  const headers = message.properties.headers
  const before = headers === undefined ? 0 : nonNegative(headers[H_DELIVERIES])
  const quorumCount = headers === undefined ? undefined : headers['x-delivery-count']
  const returned =
    typeof quorumCount === 'number' && quorumCount >= 0 ? quorumCount : message.fields.redelivered ? 1 : 0
  return before + 1 + returned
}

/**
 * True when a classic queue returned this copy unsettled: `redelivered` is set and there is no
 * `x-delivery-count` (quorum queues count exactly; classic ones only flag). The consumer then
 * re-publishes it with the count so that `attempt` stays exact.
 */
export function needsRecount(message: Message): boolean {
  if (!message.fields.redelivered) return false
  const count = message.properties.headers?.['x-delivery-count']
  return !(typeof count === 'number' && count >= 0)
}

/**
 * The message's stable id: the `message-id` property the adapter sets on publish (kept by every
 * copy), or for a message published by someone else a hash of its bytes (stable across
 * redeliveries, shared by identical bodies).
 */
export function messageIdOf(message: Message): string {
  const id = message.properties.messageId
  if (typeof id === 'string' && id.length > 0) return id
  return `sha256:${createHash('sha256').update(message.content).digest('hex').slice(0, 32)}`
}

/** The message's headers minus what belongs to one life of it (death records, counts). */
export function carriedHeaders(message: Message): MessagePropertyHeaders {
  const out: MessagePropertyHeaders = {}
  const headers = message.properties.headers
  if (headers === undefined) return out
  for (const key of Object.keys(headers)) if (!TRANSIENT.has(key)) out[key] = headers[key]
  return out
}

/** The headers of a dead letter. */
export function deadLetterHeaders(
  message: Message,
  queue: string,
  reason: DeadLetterReason,
  error: SerializedError | undefined,
  attempt: number,
): MessagePropertyHeaders {
  const headers = carriedHeaders(message)
  headers[H_REASON] = reason
  headers[H_QUEUE] = queue
  headers[H_DEAD_AT] = Date.now()
  headers[H_DELIVERIES] = attempt
  if (error !== undefined) headers[H_ERROR] = errorJson(error)
  return headers
}

/** `error` as JSON, the stack cut so that it fits a header. */
export function errorJson(error: SerializedError): string {
  const json = JSON.stringify(error)
  if (json.length <= MAX_ERROR_JSON) return json
  const cut: SerializedError = { ...error, message: error.message.slice(0, MAX_ERROR_JSON / 4) }
  if (error.stack !== undefined) cut.stack = `${error.stack.slice(0, MAX_ERROR_JSON / 2)}\n… (cut)`
  return JSON.stringify(cut)
}

/** The error stored in a dead letter's header, or undefined. */
export function parseErrorHeader(value: unknown): SerializedError | undefined {
  if (typeof value !== 'string') return undefined
  try {
    const parsed = JSON.parse(value) as unknown
    if (typeof parsed !== 'object' || parsed === null) return undefined
    const { name, message, code, stack } = parsed as Record<string, unknown>
    if (typeof name !== 'string' || typeof message !== 'string') return undefined
    const out: SerializedError = { name, message }
    if (typeof code === 'string') out.code = code
    if (typeof stack === 'string') out.stack = stack
    return out
  } catch {
    return undefined
  }
}

function nonNegative(value: unknown): number {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : 0
}
