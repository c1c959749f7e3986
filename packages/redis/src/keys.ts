/**
 * Key names. Every key of one queue carries the hash tag `{queue}` so that the whole queue lives
 * on one Redis Cluster slot and one Lua script can touch all of it.
 */

/** Escapes braces (and `%`) so a queue name can sit inside a hash tag. */
function tag(name: string): string {
  return name.replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
}

/** The keys of one queue. */
export interface QueueKeys {
  /** Ready lists by priority: index 0 is priority 0. Pushed on the left, popped on the right. */
  readonly ready: readonly string[]
  /** Sorted set of delayed items, scored by due time (ms). */
  readonly delayed: string
  /** Hash: message id → item, for every delivered and unsettled message. */
  readonly inflight: string
  /** Sorted set of leases: `id:delivery` → deadline (ms). */
  readonly leases: string
  /** Hash: message id → dead-letter record. */
  readonly dead: string
  /** Sorted set: message id → when dead-lettered, for listing oldest first. */
  readonly deadIndex: string
}

/** Keys of `queue` under `prefix`, with ready lists for priorities 0..`maxPriority`. */
export function queueKeys(prefix: string, queue: string, maxPriority: number): QueueKeys {
  const base = `${prefix}:{${tag(queue)}}:`
  const ready = [`${base}ready`]
  for (let p = 1; p <= maxPriority; p++) ready.push(`${base}ready:${p}`)
  return {
    ready,
    delayed: `${base}delayed`,
    inflight: `${base}inflight`,
    leases: `${base}leases`,
    dead: `${base}dead`,
    deadIndex: `${base}dead:index`,
  }
}

/** Keys of the result backend. Each task id hashes on its own: results spread over a cluster. */
export interface BackendKeys {
  record(id: string): string
  /** Pub/sub channel that carries a task's final record. */
  channel(id: string): string
  group(groupId: string): string
  value(key: string): string
}

/** Result backend keys under `prefix`. */
export function backendKeys(prefix: string): BackendKeys {
  return {
    record: (id) => `${prefix}:result:${id}`,
    channel: (id) => `${prefix}:done:${id}`,
    group: (groupId) => `${prefix}:group:${groupId}`,
    value: (key) => `${prefix}:value:${key}`,
  }
}

/**
 * Flow-control keys under `prefix`, beside the result backend's (no hash tag: each script
 * touches one key, so every key may hash on its own and they spread over a cluster).
 */
export interface FlowKeys {
  /** Sorted set of recorded starts of a rate limit. */
  rate(key: string): string
  /** Sorted set of the holders of a group's slots, scored by lease end. */
  slots(key: string): string
  /** Set of paused queue names. */
  readonly paused: string
}

/** Flow-control keys under `prefix`. */
export function flowKeys(prefix: string): FlowKeys {
  return {
    rate: (key) => `${prefix}:flow:rate:${key}`,
    slots: (key) => `${prefix}:flow:slots:${key}`,
    paused: `${prefix}:flow:paused`,
  }
}
