import { type FlowControlStore, flowChecks } from '@errand/core'
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
 * {@link FlowControlStore} on the backend's file: arguments checked by core's `flowChecks`, SQL in `flow-sql.ts`,
 * one transaction per call (atomic across processes sharing the file).
 */
export class SqliteFlow implements FlowControlStore {
  readonly #host: FlowHost

  constructor(host: FlowHost) {
    this.#host = host
  }

  async takeRate(key: string, max: number, perMs: number): Promise<number> {
    this.#host.assertOpen('takeRate')
    const window = flowChecks.takeRate(key, max, perMs)
    return this.#host.write((sql, now) => sql.takeRate(key, max, window, now))
  }

  async acquireSlot(key: string, holder: string, max: number, leaseMs: number): Promise<boolean> {
    this.#host.assertOpen('acquireSlot')
    const lease = flowChecks.acquireSlot(key, holder, max, leaseMs)
    return this.#host.write((sql, now) => sql.acquireSlot(key, holder, max, lease, now))
  }

  async releaseSlot(key: string, holder: string): Promise<void> {
    this.#host.assertOpen('releaseSlot')
    flowChecks.releaseSlot(key, holder)
    return this.#host.write((sql) => sql.releaseSlot(key, holder))
  }

  async setPaused(queue: string, paused: boolean): Promise<void> {
    this.#host.assertOpen('setPaused')
    flowChecks.setPaused(queue, paused)
    return this.#host.write((sql) => sql.setPaused(queue, paused))
  }

  async pausedQueues(): Promise<string[]> {
    this.#host.assertOpen('pausedQueues')
    return this.#host.read((sql) => sql.pausedQueues())
  }

  async putValue(key: string, value: string, ttlMs: number): Promise<void> {
    this.#host.assertOpen('putValue')
    const ttl = flowChecks.putValue(key, value, ttlMs)
    return this.#host.write((sql, now) => sql.putValue(key, value, ttl, now))
  }
}
