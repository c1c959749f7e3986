import { type FlowControlStore, MAX_FLOW_KEY_LENGTH } from '@errand/core'
import type { FlowSql } from './flow-sql.js'

/** What {@link SqliteFlow} needs from its backend. */
export interface FlowHost {
  /** Throws `ERR_CLOSED` naming `what` once the backend is closing. */
  assertOpen(what: string): void
  /** Opens the file if needed, then runs `fn` in one short `BEGIN IMMEDIATE` transaction. */
  write<T>(fn: (sql: FlowSql, now: number) => T): Promise<T>
  /** Opens the file if needed, then runs `fn` outside a transaction (one statement). */
  read<T>(fn: (sql: FlowSql) => T): Promise<T>
}

/**
 * {@link FlowControlStore} on the backend's file: argument checks here, SQL in `flow-sql.ts`,
 * one transaction per call (atomic across processes sharing the file).
 */
export class SqliteFlow implements FlowControlStore {
  readonly #host: FlowHost

  constructor(host: FlowHost) {
    this.#host = host
  }

  async takeRate(key: string, max: number, perMs: number): Promise<number> {
    this.#host.assertOpen('takeRate')
    checkName('takeRate', 'key', key)
    checkMax('takeRate', max)
    const window = checkMs('takeRate', 'perMs', perMs)
    return this.#host.write((sql, now) => sql.takeRate(key, max, window, now))
  }

  async acquireSlot(key: string, holder: string, max: number, leaseMs: number): Promise<boolean> {
    this.#host.assertOpen('acquireSlot')
    checkName('acquireSlot', 'key', key)
    checkName('acquireSlot', 'holder', holder)
    checkMax('acquireSlot', max)
    const lease = checkMs('acquireSlot', 'leaseMs', leaseMs)
    return this.#host.write((sql, now) => sql.acquireSlot(key, holder, max, lease, now))
  }

  async releaseSlot(key: string, holder: string): Promise<void> {
    this.#host.assertOpen('releaseSlot')
    checkName('releaseSlot', 'key', key)
    checkName('releaseSlot', 'holder', holder)
    return this.#host.write((sql) => sql.releaseSlot(key, holder))
  }

  async setPaused(queue: string, paused: boolean): Promise<void> {
    this.#host.assertOpen('setPaused')
    checkName('setPaused', 'queue', queue)
    if (typeof paused !== 'boolean') {
      throw new TypeError(`setPaused: paused must be a boolean, got ${describe(paused)}`)
    }
    return this.#host.write((sql) => sql.setPaused(queue, paused))
  }

  async pausedQueues(): Promise<string[]> {
    this.#host.assertOpen('pausedQueues')
    return this.#host.read((sql) => sql.pausedQueues())
  }

  async putValue(key: string, value: string, ttlMs: number): Promise<void> {
    this.#host.assertOpen('putValue')
    checkName('putValue', 'key', key)
    if (typeof value !== 'string')
      throw new TypeError(`putValue: value must be a string, got ${describe(value)}`)
    const ttl = checkMs('putValue', 'ttlMs', ttlMs)
    return this.#host.write((sql, now) => sql.putValue(key, value, ttl, now))
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `a string of ${value.length} characters`
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value)
  return Array.isArray(value) ? 'an array' : `a ${typeof value}`
}

function checkName(method: string, name: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_FLOW_KEY_LENGTH) {
    throw new TypeError(
      `${method}: ${name} must be a non-empty string of at most ${MAX_FLOW_KEY_LENGTH} characters, got ${describe(value)}`,
    )
  }
}

function checkMax(method: string, max: unknown): asserts max is number {
  if (!Number.isSafeInteger(max) || (max as number) < 1) {
    throw new TypeError(`${method}: max must be an integer >= 1, got ${describe(max)}`)
  }
}

/** A duration in whole ms (rounded up): the table stores integer times. */
function checkMs(method: string, name: string, ms: unknown): number {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) {
    throw new TypeError(`${method}: ${name} must be a finite number > 0, got ${describe(ms)}`)
  }
  return Math.ceil(ms)
}
