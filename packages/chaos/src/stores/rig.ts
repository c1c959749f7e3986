import { randomBytes } from 'node:crypto'
import type { CuttableProxy } from '@errand/conformance'
import type { RunLogSpec } from '../run-log.js'

/** The stores the suite runs on. */
export const storeNames = ['redis', 'postgres', 'amqp', 'sqs'] as const
/** @see storeNames */
export type StoreName = (typeof storeNames)[number]

/** One garbage item written straight into the store. */
export interface GarbageItem {
  /** What was written, readable (for the report). */
  readonly label: string
  /**
   * Bodies its dead letter may carry (the raw item, or what follows a valid header). Empty when
   * the store cannot tell (then any undecodable dead letter left over may be it).
   */
  readonly bodies: readonly Uint8Array[]
  /**
   * Dead-letter reasons that count as handled. Default `undecodable`; an item the store cannot
   * deliver at all (a delivery counter at its limit) may rightly end as `exhausted`.
   */
  readonly reasons?: readonly string[]
  /** Set when the store refused the write itself (a constraint): nothing to dead-letter. */
  readonly refused?: string
}

/** URLs of one side (workers, or the suite itself). */
export interface Endpoints {
  readonly brokerUrl: string
  readonly backendUrl: string
}

/**
 * One store set up for a chaos run: its own queue, key prefix / schema / db, cuttable proxies
 * in front of every server the workers talk to, and a garbage writer. `close()` deletes what the
 * run created and closes the proxies; it never touches anything else on the shared servers.
 */
export interface StoreRig {
  readonly store: StoreName
  readonly queue: string
  /** What the workers use: through the proxies. */
  readonly worker: Endpoints
  /** What the suite uses to send, wait and inspect: direct. */
  readonly direct: Endpoints
  readonly proxies: readonly CuttableProxy[]
  readonly runLog: RunLogSpec
  /** Where the result backend lives (for the report). */
  readonly backendKind: 'redis' | 'postgres'
  /** Write garbage item number `n` straight into the queue. */
  writeGarbage(n: number): Promise<GarbageItem>
  close(): Promise<void>
}

/** `chaos-<store>-<random>`: a name no other run or engineer uses. */
export function runName(store: StoreName): string {
  return `chaos-${store}-${randomBytes(4).toString('hex')}`
}

/** UTF-8 bytes. */
export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

/** Loopback servers of the project's machines (overridable, loopback only). */
export const SERVERS = {
  redis: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  postgres: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  amqp: process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
} as const

/** The Redis db the suite keeps its keys in (only under its own prefix; never flushed). */
export const REDIS_DB = 13

/** Refuse anything but loopback: the suite cuts and floods what it talks to. */
export function assertLoopback(url: string): void {
  const host = new URL(url).hostname
  if (!/^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(host))
    throw new Error(`not a loopback address: ${host}`)
}
