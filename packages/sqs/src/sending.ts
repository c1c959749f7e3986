import { createHash, randomUUID } from 'node:crypto'
import { ATTR, type Attributes, num, str } from './codec.js'
import type { QueueNames } from './names.js'
import type { SendEntry } from './transport.js'

/** Longest per-message delay SQS accepts: 15 minutes. */
export const MAX_DELAY_SECONDS = 900
const FIFO_ID = /^[\x21-\x7e]{1,128}$/

/** A FIFO group or dedup id as SQS accepts it: printable ASCII, 1-128; others are hashed. */
export function fifoId(value: string): string {
  return FIFO_ID.test(value) ? value : createHash('sha256').update(value).digest('hex')
}

/** Where a message goes: a priority level's queue, or (FIFO, delayed) the delay queue. */
export interface Routed {
  readonly target: { readonly kind: 'level'; readonly level: number } | { readonly kind: 'delay' }
  readonly entry: SendEntry
}

/** What to send: the body (already encoded), its timing and FIFO identity. */
export interface RouteInput {
  readonly text: string
  readonly attrs: Attributes
  readonly level: number
  readonly delayMs: number
  /** Deliveries already made of this message (re-sends), 0 for a new one. */
  readonly base: number
  readonly dedupId: string | undefined
  readonly groupId: string | undefined
}

/**
 * Decide queue and SendMessage fields for one message.
 *
 * - Standard queue: `DelaySeconds` = the delay rounded up (never early). Past 15 minutes (only
 *   re-sends do that; core hops publishes) the message carries a not-before time and hops on
 *   when received early.
 * - FIFO queue without delay: group = `groupId` (else the default group, else a group of its
 *   own), dedup id = `dedupId` (else random: no deduplication).
 * - FIFO queue with a delay: SQS refuses per-message delays on FIFO queues, so the message goes
 *   to the queue's standard delay queue with the group, dedup id and level as attributes; the
 *   FIFO queue's consumer forwards it when due. Order within a group is the order in which
 *   delayed messages fall due, after the messages already in the group.
 */
export function route(names: QueueNames, input: RouteInput, defaultGroupId: string | undefined): Routed {
  const attrs: Attributes = { ...input.attrs }
  if (input.base > 0) attrs[ATTR.base] = num(input.base)
  let delaySeconds = Math.ceil(Math.max(0, input.delayMs) / 1000)
  if (delaySeconds > MAX_DELAY_SECONDS) {
    attrs[ATTR.notBefore] = num(Date.now() + input.delayMs)
    delaySeconds = MAX_DELAY_SECONDS
  }
  if (!names.fifo) {
    const entry: SendEntry =
      delaySeconds > 0 ? { text: input.text, attrs, delaySeconds } : { text: input.text, attrs }
    return { target: { kind: 'level', level: input.level }, entry }
  }
  const groupId = fifoId(input.groupId ?? defaultGroupId ?? randomUUID())
  const dedupId = fifoId(input.dedupId ?? randomUUID())
  if (delaySeconds === 0) {
    return {
      target: { kind: 'level', level: input.level },
      entry: { text: input.text, attrs, groupId, dedupId },
    }
  }
  attrs[ATTR.group] = str(groupId)
  attrs[ATTR.dedup] = str(dedupId)
  if (input.level > 0) attrs[ATTR.level] = num(input.level)
  return { target: { kind: 'delay' }, entry: { text: input.text, attrs, delaySeconds } }
}
