import { randomBytes } from 'node:crypto'
import type { SetStateOptions, TaskRecord } from '@errand/core'
import type { Connections } from './connection.js'

/** One task record, ready for a script: its key and SET_STATES' five arguments (backend-scripts.ts). */
export interface RecordWrite {
  readonly key: string
  readonly args: readonly (string | number)[]
}

/**
 * What a broker on the same Redis needs from a {@link RedisResultBackend} to write a record in its
 * own script (`Delivery.ackWithRecord`). Package-internal: registered by the backend's constructor.
 */
export interface BackendLink {
  readonly keyPrefix: string
  readonly conns: Connections
  /**
   * Checks the record and options exactly as `setState` does (throws the same `TypeError`s, and
   * `ERR_CLOSED` once the backend is closed) and builds the write.
   */
  prepare(record: TaskRecord, options: SetStateOptions): RecordWrite
}

const links = new WeakMap<object, BackendLink>()

/** Called by the result backend's constructor. */
export function registerBackend(backend: object, link: BackendLink): void {
  links.set(backend, link)
}

/** The link of a RedisResultBackend of this package; `undefined` for any other backend. */
export function backendLink(backend: unknown): BackendLink | undefined {
  return typeof backend === 'object' && backend !== null ? links.get(backend) : undefined
}

/** How long the probe key lives if its DEL never arrives. */
const PROBE_TTL_MS = 60_000

/**
 * Tells whether a result backend writes where a broker does: one standalone Redis server, the same
 * db, the same key prefix. A cluster never qualifies (record keys hash to other slots than a
 * queue's, so one script cannot hold both). The server and db are proven, not guessed from
 * options (host names, sentinels and borrowed clients make that unreliable): once per backend, the
 * broker's connection writes a random key and the backend's connection must read it back.
 * The answer is kept per backend; a probe that failed (Redis unreachable) is tried again next time.
 */
export class SameStore {
  readonly #conns: Connections
  readonly #keyPrefix: string
  readonly #known = new WeakMap<object, BackendLink | false>()
  readonly #probing = new WeakMap<object, Promise<BackendLink | false>>()

  constructor(conns: Connections, keyPrefix: string) {
    this.#conns = conns
    this.#keyPrefix = keyPrefix
  }

  /**
   * The backend's link when it shares this broker's store, else `false`; a promise only while the
   * first probe for this backend is on its way.
   */
  check(backend: unknown): BackendLink | false | Promise<BackendLink | false> {
    if (typeof backend !== 'object' || backend === null) return false
    const known = this.#known.get(backend)
    if (known !== undefined) return known
    const link = backendLink(backend)
    if (
      link === undefined ||
      link.keyPrefix !== this.#keyPrefix ||
      this.#conns.cluster ||
      link.conns.cluster
    ) {
      this.#known.set(backend, false)
      return false
    }
    if (link.conns.main === this.#conns.main) {
      this.#known.set(backend, link)
      return link
    }
    let probing = this.#probing.get(backend)
    if (probing === undefined) {
      probing = this.#probe(link).then(
        (same) => {
          const answer = same ? link : false
          this.#known.set(backend, answer)
          this.#probing.delete(backend)
          return answer
        },
        () => {
          // Unknown for now (a connection down): not fused this time, asked again next time.
          this.#probing.delete(backend)
          return false as const
        },
      )
      this.#probing.set(backend, probing)
    }
    return probing
  }

  async #probe(link: BackendLink): Promise<boolean> {
    const key = `${this.#keyPrefix}:same-store:${randomBytes(12).toString('hex')}`
    const token = randomBytes(12).toString('hex')
    const main = this.#conns.main
    await main.set(key, token, 'PX', PROBE_TTL_MS)
    try {
      return (await link.conns.main.get(key)) === token
    } finally {
      main.del(key).catch(() => {})
    }
  }
}
