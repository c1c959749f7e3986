import { createHash, randomUUID } from 'node:crypto'
import { ATTR, type Attributes, num, str } from './codec.js'
import type { QueueNames } from './names.js'
import type { SendEntry } from './store.js'

/** Longest per-message delay SQS accepts: 15 minutes. */
export const MAX_DELAY_SECONDS = 900
const FIFO_ID = /^[\x21-\x7e]{1,128}$/

/** A FIFO group or dedup id as SQS accepts it: printable ASCII, 1-128; others are hashed. */
export function fifoId(value: string): string {
  return FIFO_ID.test(value) ? value : createHash('sha256').update(value).digest('hex')
}

/** Where a message goes: a priority level's queue, or (delayed) the queue's delay queue. */
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
 * - No delay: straight to the queue of its priority level. On a FIFO queue the group is
 *   `groupId` (else the default group, else a group of its own) and the dedup id `dedupId`
 *   (else random: no deduplication).
 * - A delay: to the queue's standard delay queue `<base>-delay`, with `DelaySeconds` = the whole
 *   seconds of the delay (at most 15 minutes) and the exact due time as an attribute; the
 *   queue's consumers forward it when due (holding the last fraction of a second, hopping by
 *   visibility past 15 minutes). Why not `DelaySeconds` on the queue itself: FIFO queues refuse
 *   per-message delays, and delayed messages cannot be received, so `purge` could not remove
 *   them without also removing messages in flight. Order within a FIFO group is the order in
 *   which delayed messages fall due, after the messages already in the group.
 */
export function route(names: QueueNames, input: RouteInput, defaultGroupId: string | undefined): Routed {
  const attrs: Attributes = { ...input.attrs }
  if (input.base > 0) attrs[ATTR.base] = num(input.base)
  const groupId = names.fifo ? fifoId(input.groupId ?? defaultGroupId ?? randomUUID()) : undefined
  const dedupId = names.fifo ? fifoId(input.dedupId ?? randomUUID()) : undefined
  if (input.delayMs <= 0) {
    const entry: SendEntry =
      groupId !== undefined && dedupId !== undefined
        ? { text: input.text, attrs, groupId, dedupId }
        : { text: input.text, attrs }
    return { target: { kind: 'level', level: input.level }, entry }
  }
  attrs[ATTR.notBefore] = num(Date.now() + input.delayMs)
  if (groupId !== undefined) attrs[ATTR.group] = str(groupId)
  if (dedupId !== undefined) attrs[ATTR.dedup] = str(dedupId)
  if (input.level > 0) attrs[ATTR.level] = num(input.level)
  const delaySeconds = Math.min(MAX_DELAY_SECONDS, Math.floor(input.delayMs / 1000))
  return { target: { kind: 'delay' }, entry: { text: input.text, attrs, delaySeconds } }
}
