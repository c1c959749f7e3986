import type { Envelope } from './envelope.js'
import { InvalidOptionError, NotSupportedError } from './errors.js'
import { hasFlowControl } from './flow-control.js'
import { isFinalState, type ResultBackend } from './result-backend.js'

/**
 * What a second `send` with the same `dedupKey` does:
 * - `keep-first` (default): while the first send's task has not finished (and within
 *   `dedupTtlMs`), later sends get the first one's handle and publish nothing; once it finished,
 *   the next send starts a new task.
 * - `throttle`: at most one task per window of `dedupTtlMs` from the first send, finished or not.
 * - `debounce`: the task starts once `dedupTtlMs` has passed without another send with the key;
 *   each send replaces the pending input and pushes the start back. Every send of one burst gets
 *   the same handle, which gets the result of the last input. One signature per send.
 */
export type DedupMode = 'keep-first' | 'throttle' | 'debounce'

/** Every dedup mode. */
export const DEDUP_MODES: readonly DedupMode[] = ['keep-first', 'throttle', 'debounce']

/** What the send does after the claim. */
export interface DedupClaim {
  /** The task id the send's handle stands for. */
  readonly id: string
  /** False: an earlier send's task stands for this one; publish nothing. */
  readonly publish: boolean
  /** Debounce: the value to carry in the envelope (`Envelope.debounce`). */
  readonly debounce?: string
}

const storeKey = (key: string): string => `dedup:${key}`

/**
 * Claim `key` for a send whose task would get `id`. Keep-first and throttle use the backend's
 * `setIfAbsent` (atomic: of two racing sends, one publishes); debounce needs `putValue` (flow
 * control) and is last-writer-wins: of two sends racing in the same instant both may run, never
 * neither.
 */
export async function claimDedup(
  backend: ResultBackend | undefined,
  key: string,
  mode: DedupMode,
  ttlMs: number,
  id: string,
): Promise<DedupClaim> {
  if (!backend) throw new NotSupportedError('dedupKey needs a result backend: pass `backend` to createApp()')
  if (mode === 'debounce') return claimDebounce(backend, key, ttlMs, id)
  for (let i = 0; i < 3; i++) {
    if (await backend.setIfAbsent(storeKey(key), id, ttlMs)) return { id, publish: true }
    const first = await backend.getValue(storeKey(key))
    if (first === undefined) continue // expired between the two calls: claim again
    if (mode === 'throttle') return { id: first, publish: false }
    const record = await backend.getState(first)
    if (record === undefined || !isFinalState(record.state)) return { id: first, publish: false }
    if (!hasFlowControl(backend)) return { id: first, publish: false }
    // The first task finished: one send starts the next. Racing sends claim the successor of
    // `first` (atomic), so exactly one of them publishes and the others get its handle.
    const successor = `dedup-next:${first}`
    if (!(await backend.setIfAbsent(successor, id, ttlMs))) {
      const next = await backend.getValue(successor)
      if (next !== undefined) return { id: next, publish: false }
    }
    await backend.putValue(storeKey(key), id, ttlMs)
    return { id, publish: true }
  }
  return { id, publish: true }
}

async function claimDebounce(
  backend: ResultBackend,
  key: string,
  quietMs: number,
  id: string,
): Promise<DedupClaim> {
  if (!hasFlowControl(backend)) {
    throw new NotSupportedError(`dedupMode 'debounce' needs a result backend with flow control`, {
      adapter: backend.name,
    })
  }
  const current = await backend.getValue(storeKey(key))
  const pending = current?.split(' ')[0]
  let taskId = id
  if (pending) {
    const record = await backend.getState(pending)
    if (record === undefined || !isFinalState(record.state)) taskId = pending
  }
  const token = Math.random().toString(36).slice(2, 12)
  // Kept well past the quiet period: a late worker must still tell a replaced send from the latest.
  await backend.putValue(storeKey(key), `${taskId} ${token}`, quietMs + 3_600_000)
  return { id: taskId, publish: true, debounce: `${key} ${token}` }
}

/**
 * For a worker: true when `env` was sent with debounce and a later send replaced it (the key now
 * names the same task with another token). A key that expired or names another task (a race)
 * runs the message: never lose a send.
 */
export async function debounceReplaced(backend: ResultBackend | undefined, env: Envelope): Promise<boolean> {
  if (env.debounce === undefined || !backend) return false
  const cut = env.debounce.lastIndexOf(' ')
  const key = env.debounce.slice(0, cut)
  const token = env.debounce.slice(cut + 1)
  const current = await backend.getValue(storeKey(key))
  if (current === undefined) return false
  const [taskId, latest] = current.split(' ')
  return taskId === env.id && latest !== token
}

/** Check `dedupMode` at send (plain JavaScript callers too). */
export function checkDedupMode(mode: unknown, ttlMs: unknown): void {
  if (mode === undefined) return
  if (!DEDUP_MODES.includes(mode as DedupMode)) {
    throw new InvalidOptionError(
      'dedupMode',
      `expected one of ${DEDUP_MODES.join(', ')}, got ${String(mode)}`,
    )
  }
  if (mode === 'debounce' && ttlMs === undefined) {
    throw new InvalidOptionError(
      'dedupTtlMs',
      `dedupMode 'debounce' needs dedupTtlMs: the quiet period before the task starts`,
    )
  }
}
