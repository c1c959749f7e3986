import { randomBytes } from 'node:crypto'
import { type FlowControlStore, flowChecks } from '@errand/core'
import type { Connections } from './connection.js'
import { ACQUIRE_SLOT, TAKE_RATE } from './flow-scripts.js'
import type { FlowKeys } from './keys.js'

/**
 * Longest rate window or lease (about 31 years); longer ones are cut to it. Keeps the scripts'
 * microsecond arithmetic exact (server time in µs plus this stays below 2^53) and PEXPIRE in range.
 */
const MAX_SPAN_MS = 1e12

/**
 * {@link FlowControlStore} on Redis, for `RedisResultBackend`. Every method is one command: a
 * script (`takeRate`, `acquireSlot`) or a plain one (`ZREM`, `SADD`/`SREM`, `SMEMBERS`, `SET PX`),
 * on one key, so it is atomic and runs on a cluster.
 *
 * - Rate limit: a sorted set per key of start times (server clock, µs), trimmed to the window on
 *   each call and expiring with the window of its last start.
 * - Slots: a sorted set per key of holder → lease end, expired leases removed on each call; the
 *   key expires with its longest lease.
 * - Paused queues: one set per prefix, without a TTL (a pause lasts until resumed; Redis deletes
 *   the set when the last queue is resumed).
 * - `putValue`: `SET PX` on the key `setIfAbsent` / `getValue` use.
 *
 * Arguments are checked by core's `flowChecks`, as on every store.
 */
export class RedisFlowControl implements FlowControlStore {
  readonly #conns: Connections
  readonly #keys: FlowKeys
  readonly #valueKey: (key: string) => string
  /** Members of the rate sets: unique across processes without a shared counter. */
  readonly #token = randomBytes(6).toString('hex')
  #starts = 0

  constructor(conns: Connections, keys: FlowKeys, valueKey: (key: string) => string) {
    this.#conns = conns
    this.#keys = keys
    this.#valueKey = valueKey
  }

  async takeRate(key: string, max: number, perMs: number): Promise<number> {
    const window = Math.min(flowChecks.takeRate(key, max, perMs), MAX_SPAN_MS)
    const member = `${this.#token}:${(this.#starts++).toString(36)}`
    const args = [max, window * 1000, Math.ceil(window), member]
    const reply = await this.#call('takeRate', () =>
      TAKE_RATE.run(this.#conns.main, [this.#keys.rate(key)], args),
    )
    return Number(reply)
  }

  async acquireSlot(key: string, holder: string, max: number, leaseMs: number): Promise<boolean> {
    const lease = Math.min(flowChecks.acquireSlot(key, holder, max, leaseMs), MAX_SPAN_MS)
    const reply = await this.#call('acquireSlot', () =>
      ACQUIRE_SLOT.run(this.#conns.main, [this.#keys.slots(key)], [holder, max, lease * 1000]),
    )
    return Number(reply) === 1
  }

  async releaseSlot(key: string, holder: string): Promise<void> {
    flowChecks.releaseSlot(key, holder)
    await this.#call('releaseSlot', () => this.#conns.main.zrem(this.#keys.slots(key), holder))
  }

  async setPaused(queue: string, paused: boolean): Promise<void> {
    flowChecks.setPaused(queue, paused)
    const main = this.#conns.main
    const key = this.#keys.paused
    await this.#call('setPaused', () => (paused ? main.sadd(key, queue) : main.srem(key, queue)))
  }

  async pausedQueues(): Promise<string[]> {
    const queues = await this.#call('pausedQueues', () => this.#conns.main.smembers(this.#keys.paused))
    return queues.sort()
  }

  async putValue(key: string, value: string, ttlMs: number): Promise<void> {
    const ttl = flowChecks.putValue(key, value, ttlMs)
    await this.#call('putValue', () => this.#conns.main.set(this.#valueKey(key), value, 'PX', ttl))
  }

  async #call<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run()
    } catch (err) {
      throw this.#conns.error(what, err)
    }
  }
}
