import type { RedisDelivery } from './delivery.js'
import type { RecordWrite } from './same-store.js'

/** Most messages one round trip takes or settles (Lua's unpack has a stack limit). */
export const MAX_BATCH = 1000

/** An ack waiting for the consumer's next round trip. */
export interface PendingAck {
  readonly delivery: RedisDelivery
  /** A fused ack (`ackWithRecord`): the task record written in the same script. */
  readonly write: RecordWrite | undefined
  /** With the state stored for a fused ack ('' for a plain one). */
  readonly resolve: (stored: string) => void
  readonly reject: (err: unknown) => void
}

/** A lease extension waiting for the consumer's next round trip. */
export interface PendingExtend {
  readonly delivery: RedisDelivery
  readonly ms: number
  /** False when the lease was gone. */
  readonly resolve: (held: boolean) => void
  readonly reject: (err: unknown) => void
}

/** One call of the CYCLE script (store.ts): what it settles and takes, with its KEYS and ARGV. */
export interface RoundTrip {
  readonly want: number
  /** In ARGV order: fused acks first (the script pairs them with the records, in order). */
  readonly acks: readonly PendingAck[]
  readonly nRecords: number
  readonly extensions: readonly PendingExtend[]
  readonly keys: readonly string[]
  readonly args: readonly (string | number)[]
}

/** The first `MAX_BATCH` of `list`, and what is left for the next round trip. */
export function takeBatch<T>(list: T[]): [batch: T[], rest: T[]] {
  return list.length <= MAX_BATCH ? [list, []] : [list.slice(0, MAX_BATCH), list.slice(MAX_BATCH)]
}

/** The CYCLE call that settles `acks` and `extensions` and takes up to `want` messages. */
export function buildRoundTrip(
  keyList: readonly string[],
  leaseMs: number,
  want: number,
  acks: readonly PendingAck[],
  extensions: readonly PendingExtend[],
): RoundTrip {
  let ordered = acks
  let keys = keyList
  const records: (string | number)[] = []
  if (acks.some((a) => a.write !== undefined)) {
    const fused = acks.filter((a) => a.write !== undefined)
    ordered = [...fused, ...acks.filter((a) => a.write === undefined)]
    keys = [...keys, ...fused.map((a) => (a.write as RecordWrite).key)]
    for (const a of fused) records.push(...(a.write as RecordWrite).args)
  }
  const nRecords = keys.length - keyList.length
  const args: (string | number)[] = [leaseMs, want, acks.length, extensions.length, nRecords]
  for (const a of ordered) args.push(a.delivery.lease)
  for (const e of extensions) args.push(e.delivery.lease, e.ms)
  if (nRecords > 0) args.push(...records)
  return { want, acks: ordered, nRecords, extensions, keys, args }
}

/**
 * Settle the acks and extensions of `trip` from its reply; returns the index of the reply's
 * first slot after them. `recordError` wraps a record the script could not write.
 */
export function applyReply(
  trip: RoundTrip,
  reply: readonly unknown[],
  recordError: (message: string) => Error,
): number {
  const { acks, nRecords, extensions } = trip
  for (let k = 0; k < acks.length; k++) {
    const a = acks[k]!
    if (k >= nRecords) {
      a.resolve('')
      continue
    }
    const stored = String(reply[1 + k])
    // The record could not be written (a key of the wrong type): neither it nor the ack was
    // made, as when setState fails before an ack.
    if (stored.startsWith('ERR ')) a.reject(recordError(stored.slice(4)))
    else a.resolve(stored)
  }
  for (let k = 0; k < extensions.length; k++) {
    // False: the lease ran out and the message went back to the queue (where another consumer,
    // or this one, may have taken it again); core's delivery marks itself lost.
    extensions[k]!.resolve(reply[1 + nRecords + k] === 1)
  }
  return 1 + nRecords + extensions.length
}

/**
 * The round trip failed: its settles reject (the caller may retry; if nobody does, the lease runs
 * out and the message comes back: at-least-once, nothing lost).
 */
export function failRoundTrip(trip: RoundTrip, error: Error): void {
  for (const a of trip.acks) a.reject(error)
  for (const e of trip.extensions) e.reject(error)
}
