/**
 * Wakes this process's idle consumers when it publishes or gives rows back, so a consumer in the
 * same process never waits for its poll. Other processes are found by polling (`pollMs`): MySQL
 * has no LISTEN/NOTIFY.
 */
export const WakeBus = {
  listeners: new Map<string, Set<() => void>>(),

  /** Subscribe to wakes of `queue` in the store `key`; returns the unsubscribe. */
  on(key: string, queue: string, wake: () => void): () => void {
    const k = `${key}\u0000${queue}`
    const set = this.listeners.get(k) ?? new Set<() => void>()
    this.listeners.set(k, set)
    set.add(wake)
    return () => {
      set.delete(wake)
      if (set.size === 0) this.listeners.delete(k)
    }
  },

  /** Wake the consumers of `queue` (or of every queue of the store, for `*`). */
  wake(key: string, queue: string): void {
    for (const [k, set] of this.listeners) {
      if (queue === '*' ? k.startsWith(`${key}\u0000`) : k === `${key}\u0000${queue}`)
        for (const w of set) w()
    }
  },
}
