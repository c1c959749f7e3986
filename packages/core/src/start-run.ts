import type { Delivery } from './broker.js'
import type { Envelope } from './envelope.js'
import { DecodeError, ErrandError, type SerializedError, serializeError } from './errors.js'
import { isFinalState, type ResultBackend, type TaskRecord } from './result-backend.js'
import type { TaskInfo } from './worker-options.js'

/** What {@link startRun} decided: run the handler, dead-letter as canceled, or as exhausted. */
export type StartDecision = 'run' | 'canceled' | ErrandError

/**
 * Apply the redelivery budget and record STARTED, before a handler runs.
 *
 * The budget (`maxRedeliveries`) counts *starts without an outcome*, not deliveries: a worker that
 * dies with a full prefetch buffer returns deliveries it never started, and those must not push an
 * innocent task towards the dead letters during a crash storm. With a backend (and `trackStarted`),
 * each STARTED record carries `starts`. A first delivery knows it is the first start without
 * asking, so the hot path keeps its one write; only a redelivery (after a crash, a lost lease or a
 * graceful stop that returned it) reads the record first: one extra round trip, on that rare
 * path only. The read and the write are not atomic: two workers holding the same message at once
 * (a lost lease) may count one start between them, which errs towards running.
 *
 * Without a backend, or when `trackStarted` is off, there is nowhere to count starts: the worker
 * uses {@link deliveryBudget} instead.
 */
export async function startRun(
  backend: ResultBackend,
  d: Delivery,
  env: Envelope,
  info: TaskInfo,
  ttlMs: number,
  maxRedeliveries: number,
  now: number,
  /** Told the STARTED record this call wrote (progress writes reuse it). */
  written?: (record: TaskRecord) => void,
): Promise<StartDecision> {
  let before = 0
  if (d.attempt > 1) {
    const prev = await backend.getState(env.id)
    // A STARTED record of this attempt (not of an earlier one that was retried) counts; one from
    // a worker that did not write `starts` counts as every delivery having started, as before.
    if (prev?.state === 'STARTED' && (prev.attempts ?? env.attempt) >= env.attempt) {
      before = typeof prev.starts === 'number' ? prev.starts : d.attempt - 1
    }
  }
  if (before > maxRedeliveries) {
    return tooMany(
      `started ${before} times without an outcome (workers died or lost the lease while running it)`,
    )
  }
  // The state leads (a Redis backend stores the JSON as built; it needs the state first).
  const record: MutableRecord = {
    state: 'STARTED',
    id: env.id,
    task: env.task,
    attempts: info.attempt,
    starts: before + 1,
    createdAt: env.createdAt,
    startedAt: now,
  }
  addLineage(record, env)
  written?.(record)
  const stored = await backend.setState(record, { ttlMs })
  return stored === 'CANCELED' ? 'canceled' : 'run'
}

/**
 * The budget where starts cannot be counted (no backend, or `trackStarted: false`): deliveries
 * (`delivery.attempt - 1`), synchronously, so that path pays no extra await.
 */
export function deliveryBudget(d: Delivery, maxRedeliveries: number): 'run' | ErrandError {
  return d.attempt - 1 > maxRedeliveries
    ? tooMany(`delivered ${d.attempt} times without an outcome (workers died or lost the lease)`)
    : 'run'
}

function tooMany(message: string): ErrandError {
  return new ErrandError('ERR_TIMEOUT', message)
}

/**
 * A message that could not be decoded but names a task id (a foreign or stale producer got a
 * field wrong): record FAILURE under that id, so the sender's `get()` fails with the decode error
 * instead of waiting out its timeout. A final record already there is left alone (a garbage copy
 * must not overwrite a task's real outcome), which costs one read, on this rare path only.
 */
export async function failUndecodable(
  backend: ResultBackend | undefined,
  err: unknown,
  ttlMs: number,
): Promise<SerializedError> {
  const error = serializeError(err)
  const id = err instanceof DecodeError ? err.taskId : undefined
  if (!backend || id === undefined) return error
  try {
    const prev = await backend.getState(id)
    if (prev === undefined || !isFinalState(prev.state)) {
      await backend.setState({ id, state: 'FAILURE', error, finishedAt: Date.now() }, { ttlMs })
    }
  } catch {
    // Best effort: the dead letter (which the worker logs) is what must happen; a backend that
    // cannot be written now must not turn garbage into a redelivery loop.
  }
  return error
}

/** A record being built. */
export type MutableRecord = { -readonly [K in keyof TaskRecord]: TaskRecord[K] }

/**
 * {@link recordLineage} added to `record` in place (the same fields in the same order, without
 * the objects a spread makes): for the records every task writes.
 */
export function addLineage(record: MutableRecord, env: Envelope): void {
  record.queue = env.queue
  if (env.root !== undefined && env.root !== env.id) record.root = env.root
  if (env.parent !== undefined) record.parent = env.parent
}

/** Where a task sits, for its record: its queue, and its root and parent when it has them. */
export function recordLineage(env: Envelope): { queue: string; root?: string; parent?: string } {
  return {
    queue: env.queue,
    ...(env.root !== undefined && env.root !== env.id && { root: env.root }),
    ...(env.parent !== undefined && { parent: env.parent }),
  }
}
